import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { Rng } from '@deepen/core';
import { Tokenizer, trainByteLevelBpe } from '@deepen/data';
import { LlamaModel, makeConfig, saveCheckpoint } from '@deepen/models';
import { getLlama, type Llama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliRunner } from './cli-runner.js';

/**
 * `pretrain export` and .gguf files as CHECKPOINT arguments, end to end: the CLI writes the
 * file, llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build) continues a prompt exactly as
 * `pretrain generate` does, and every command opens the file.
 */
const { root, run } = cliRunner('deepen-gguf-cli-');
const data = join(root, 'data.jsonl');
const lns = join(root, 'lns');
const post = join(root, 'post');
let tokenizer: Tokenizer;
let llama: Llama;

async function checkpoint(dir: string, norm: string): Promise<void> {
  const config = makeConfig({
    vocab_size: tokenizer.vocabSize,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 256,
    initializer_range: 0.2, // every weight matters, attention included
    bos_token_id: tokenizer.special.bos,
    eos_token_id: tokenizer.special.eos,
    pad_token_id: tokenizer.special.pad,
    deepen: { norm_scheme: norm },
  });
  const model = LlamaModel.create(config, { seed: 3 });
  const rng = Rng.fromSeed(4);
  for (const [name, v] of model.params) if (name.endsWith('norm.weight')) v.assign(tf.tensor(rng.fillNormal(new Float32Array(v.size), 1, 0.3), v.shape));
  await saveCheckpoint(model, dir, { files: { 'tokenizer.json': tokenizer.serialize() } });
  model.dispose();
}

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
  const lines = Array.from({ length: 120 }, (_, i) => JSON.stringify({ text: `Speech number ${i}: the people of the union ask for peace, trade and ${i % 7} new roads across the states.` }));
  writeFileSync(data, `${lines.join('\n')}\n`);
  tokenizer = Tokenizer.fromJSON(trainByteLevelBpe(lines.map((l) => (JSON.parse(l) as { text: string }).text), { vocabSize: 320 }));
  await checkpoint(lns, 'lns');
  await checkpoint(post, 'post');
  llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false, skipDownload: true, logLevel: 'error' as never, maxThreads: 2 });
});

afterAll(async () => {
  await llama?.dispose();
});

/** llama.cpp's greedy continuation (F32 KV cache, flash attention off), as text through deepen's tokenizer. */
async function llamaCppContinuation(path: string, prompt: number[], count: number): Promise<{ text: string; tokens: number }> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: 256, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', threads: 2 });
  const sequence = context.getSequence();
  const out: number[] = [];
  for await (const token of sequence.evaluate(prompt as never, { temperature: 0 })) {
    if (token === tokenizer.special.eos) break;
    out.push(token as number);
    if (out.length >= count) break;
  }
  await context.dispose();
  await model.dispose();
  return { text: tokenizer.decode(out, { skipSpecialTokens: true }), tokens: out.length };
}

describe('pretrain export --format gguf', () => {
  it('writes a file llama.cpp continues exactly as pretrain generate does (40 greedy tokens), in F32 and F16', async () => {
    const prompt = 'Speech number 12: the people';
    const ours = run(['generate', lns, '--prompt', prompt, '--max-tokens', '40', '--temperature', '0']);
    expect(ours.code, ours.stderr).toBe(0);
    for (const dtype of ['f32', 'f16']) {
      const out = join(root, `lns-${dtype}.gguf`);
      const r = run(['export', lns, '--out', out, '--dtype', dtype]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain("folding 'lns' into a plain Pre-LN model");
      expect(r.stdout).toMatch(new RegExp(`wrote .*lns-${dtype}\\.gguf \\(.*\\): llama\\.cpp architecture llama, 3 layers, tensors`));
      const theirs = await llamaCppContinuation(out, [tokenizer.special.bos as number, ...tokenizer.encode(prompt)], 40);
      expect(theirs.tokens).toBe(40); // no end-of-sequence on the way: all 40 compared
      if (dtype === 'f32') expect(`${prompt}${theirs.text}\n`).toBe(ours.stdout);
      else expect(theirs.text.length).toBeGreaterThan(0);
    }
  });

  it('every command opens the .gguf file: info, eval (the same loss as the checkpoint) and generate', () => {
    const out = join(root, 'lns-f32.gguf');
    const info = run(['info', out, '--json']);
    expect(info.code, info.stderr).toBe(0);
    expect(info.stderr).toMatch(/imported .*lns-f32\.gguf \(llama\.cpp llama; tensors 30 F32\) into /);
    expect(JSON.parse(info.stdout).config.num_key_value_heads).toBe(2);
    const evalOf = (what: string) => {
      const r = run(['eval', what, '--data', data, '--seq-len', '64', '--max-tokens', '512', '--json']);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { loss: number };
    };
    expect(Math.abs(evalOf(out).loss - evalOf(lns).loss)).toBeLessThan(1e-5);
    const gen = run(['generate', out, '--prompt', 'Speech number 12: the people', '--max-tokens', '40', '--temperature', '0']);
    const direct = run(['generate', lns, '--prompt', 'Speech number 12: the people', '--max-tokens', '40', '--temperature', '0']);
    expect(gen.stdout).toBe(direct.stdout);
    // The second time the cached import is reused.
    expect(run(['info', out]).stderr).not.toMatch(/imported/);
  });

  it('Q8_0, and the folded safetensors format for transformers', () => {
    const q8 = join(root, 'lns-q8_0.gguf');
    const r = run(['export', lns, '--out', q8, '--dtype', 'q8_0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/tensors 23 Q8_0, 7 F32/);
    const st = join(root, 'lns-folded');
    const s = run(['export', lns, '--format', 'safetensors', '--out', st, '--dtype', 'bf16']);
    expect(s.code, s.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(st, 'config.json'), 'utf8'));
    expect(config.deepen).toMatchObject({ norm_scheme: 'pre', folded_from: 'lns' });
    expect(config.torch_dtype).toBe('bfloat16');
    expect(existsSync(join(st, 'tokenizer.json'))).toBe(true);
  });

  it('refuses what it cannot write, by name, and leaves --out alone', () => {
    const out = join(root, 'post.gguf');
    const r = run(['export', post, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cannot export norm scheme 'post': its blocks scale the residual or normalise after it, so it has no plain Pre-LN equivalent for other runtimes (deepen itself runs it)");
    expect(existsSync(out)).toBe(false);
    const existing = join(root, 'existing.gguf');
    writeFileSync(existing, 'keep me');
    const again = run(['export', lns, '--out', existing]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`--out ${existing} already exists; remove it or choose another --out`);
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
    for (const [args, message] of [
      [['export', lns, '--out', join(root, 'x.bin')], 'a GGUF file\'s name ends in .gguf'],
      [['export', lns, '--out', join(root, 'x.gguf'), '--dtype', 'q4_k'], "--dtype must be one of f32, f16, bf16, q8_0, got 'q4_k'"],
      [['export', lns, '--format', 'safetensors', '--out', join(root, 'x'), '--dtype', 'q8_0'], '--dtype q8_0 is a GGUF type'],
      [['export', lns], '--out is required'],
    ] as const) {
      const bad = run([...args]);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr).toContain(message);
    }
  });

  it('a truncated, foreign or missing .gguf is a named error (exit 2)', () => {
    const good = readFileSync(join(root, 'lns-f32.gguf'));
    const cut = join(root, 'cut.gguf');
    writeFileSync(cut, good.subarray(0, good.length - 1000));
    const a = run(['eval', cut, '--data', data]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/cut\.gguf: truncated: tensor \S+'s data ends at byte \d+, the file has \d+ bytes/);
    const foreign = join(root, 'foreign.gguf');
    writeFileSync(foreign, 'PK\u0003\u0004 a zip file');
    const b = run(['generate', foreign]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('foreign.gguf: not a GGUF file (it does not start with "GGUF")');
    const c = run(['info', join(root, 'missing.gguf')]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('missing.gguf: GGUF file not found');
    // Nothing half-imported stays in the cache.
    const cache = join(root, 'cache', 'gguf');
    expect(readdirSync(cache).filter((f) => f.startsWith('cut') || f.startsWith('foreign'))).toEqual([]);
  });
});

describe('pretrain publish --gguf', () => {
  it('adds the GGUF files to the upload and a section on running them to the card', () => {
    const out = join(root, 'publish-dry');
    const r = run(['publish', lns, '--repo', 'alice/tiny-lns', '--dry-run', '--out', out, '--gguf', 'f16,q8_0']);
    expect(r.code, r.stderr).toBe(0);
    const files = readdirSync(out).sort();
    expect(files).toEqual(expect.arrayContaining(['tiny-lns-F16.gguf', 'tiny-lns-Q8_0.gguf', 'model.safetensors', 'config.json', 'README.md']));
    const card = readFileSync(join(out, 'README.md'), 'utf8');
    expect(card).toContain('## GGUF (llama.cpp, Ollama, LM Studio)');
    expect(card).toContain('llama-cli -hf alice/tiny-lns:F16');
    expect(card).toContain('ollama run hf.co/alice/tiny-lns:F16');
    expect(card).toMatch(/\| `tiny-lns-Q8_0\.gguf` \| Q8_0 \|/);
    expect(card).toMatch(/^- gguf$/m);
    const bad = run(['publish', post, '--repo', 'alice/post', '--dry-run', '--out', join(root, 'p2'), '--gguf', 'f16']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--gguf: norm scheme 'post' has no plain Pre-LN equivalent, so llama.cpp cannot run it");
  });
});
