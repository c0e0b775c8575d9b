import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { Rng } from '@deepen/core';
import { Tokenizer, trainByteLevelBpe } from '@deepen/data';
import { LlamaModel, makeConfig, saveCheckpoint, type LlamaConfig } from '@deepen/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliRunner } from './cli-runner.js';

/**
 * Every command on a checkpoint of every family deepen loads. The numerics of each family are
 * checked against an independent PyTorch reference in @deepen/models; here the point is that
 * each command takes the family and writes it back in its own format.
 */
const { root, run } = cliRunner('deepen-families-');
const data = join(root, 'data.jsonl');
const CPU = ['--backend', 'cpu'];
const SHAPE = { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128 };

const FAMILIES: Record<string, Partial<LlamaConfig>> = {
  // Llama 3.1-style rotary scaling with attention and MLP biases, head_dim wider than hidden / heads.
  llama3: {
    model_type: 'llama',
    attention_bias: true,
    mlp_bias: true,
    head_dim: 16,
    rope_theta: 500000,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
  },
  mistral: { model_type: 'mistral', sliding_window: 8 },
  qwen2: { model_type: 'qwen2', use_sliding_window: true, sliding_window: 8, max_window_layers: 1, tie_word_embeddings: true, rope_theta: 1e6 },
  qwen3: { model_type: 'qwen3', head_dim: 16, tie_word_embeddings: true, rope_theta: 1e6 },
};
const checkpoint = (family: string) => join(root, 'families', family);
const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
  const lines = Array.from({ length: 80 }, (_, i) => JSON.stringify({ text: `Speech number ${i}: the people of the union ask for peace, trade and ${i % 7} new roads across the states.` }));
  writeFileSync(data, `${lines.join('\n')}\n`);
  const tokenizer = Tokenizer.fromJSON(trainByteLevelBpe(lines.map((l) => (JSON.parse(l) as { text: string }).text), { vocabSize: 300 }));
  for (const [family, features] of Object.entries(FAMILIES)) {
    const config = makeConfig({ ...SHAPE, ...features, vocab_size: tokenizer.vocabSize, bos_token_id: tokenizer.special.bos, eos_token_id: tokenizer.special.eos, pad_token_id: tokenizer.special.pad });
    const model = LlamaModel.create(config, { seed: 7 });
    // Biases and q/k norms away from their zero / one init, so a command that dropped them would differ.
    const rng = Rng.fromSeed(8);
    for (const [name, v] of model.params) {
      if (name.endsWith('.bias') || name.endsWith('_norm.weight')) v.assign(tf.tensor(rng.fillNormal(new Float32Array(v.size), name.endsWith('.bias') ? 0 : 1, 0.2), v.shape));
    }
    // One family as the big checkpoints ship: BF16, sharded.
    const layout = family === 'qwen2' ? { dtype: 'BF16' as const, maxShardBytes: 20_000 } : {};
    // Qwen3 gets a tokenizer_config.json with a ChatML template, as the real ones have.
    const chat: Record<string, string> = family === 'qwen3' ? { 'tokenizer_config.json': JSON.stringify({ bos_token: null, eos_token: '</s>', chat_template: CHATML }) } : {};
    await saveCheckpoint(model, checkpoint(family), { ...layout, files: { 'tokenizer.json': tokenizer.serialize(), ...chat } });
    model.dispose();
  }
});

describe('every command takes every family', () => {
  for (const family of Object.keys(FAMILIES)) {
    it(`${family}: info, eval and generate`, () => {
      const info = run(['info', checkpoint(family), '--json', ...CPU]);
      expect(info.code, info.stderr).toBe(0);
      const described = JSON.parse(info.stdout);
      expect(described.config.model_type).toBe(FAMILIES[family]!.model_type);
      expect(described.family).toMatch(/ForCausalLM$/);
      const human = run(['info', checkpoint(family), ...CPU]);
      expect(human.stdout).toMatch(new RegExp(`^family +${FAMILIES[family]!.model_type} \\(`, 'm'));

      const ev = run(['eval', checkpoint(family), '--data', data, '--seq-len', '16', '--max-tokens', '128', '--json', ...CPU]);
      expect(ev.code, ev.stderr).toBe(0);
      const result = JSON.parse(ev.stdout);
      expect(result.tokens).toBe(128);
      expect(Math.abs(result.loss - Math.log(300))).toBeLessThan(1); // a random model: near uniform

      const gen = run(['generate', checkpoint(family), '--prompt', 'Speech number', '--max-tokens', '6', '--temperature', '0', ...CPU]);
      expect(gen.code, gen.stderr).toBe(0);
      expect(gen.stdout.startsWith('Speech number')).toBe(true);
    });
  }

  it("generate --chat answers through the model's own chat template, and says when there is none", () => {
    const tokenizer = Tokenizer.fromDir(checkpoint('qwen3'));
    expect(tokenizer.chatTemplate).toBe(CHATML);
    expect(tokenizer.special.bos).toBeNull(); // tokenizer_config.json says so: no BOS framing, as Qwen
    const ok = run(['generate', checkpoint('qwen3'), '--chat', '--system', 'Be brief.', '--prompt', 'Speech number 3?', '--max-tokens', '4', '--temperature', '0', ...CPU]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).not.toContain('Speech number 3?'); // a reply, not a continuation of the prompt
    // A prompt too long for the context reports its length: the rendered template's, not the bare prompt's.
    const question = 'the people of the union ask for peace '.repeat(6);
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: question }];
    const framed = tokenizer.encodeChat(messages, { addGenerationPrompt: true }).length;
    expect(framed).toBeGreaterThan(tokenizer.encode(question).length + 10);
    const long = run(['generate', checkpoint('qwen3'), '--chat', '--system', 'Be brief.', '--prompt', question.repeat(2), ...CPU]);
    const longFramed = tokenizer.encodeChat([messages[0]!, { role: 'user', content: question.repeat(2) }], { addGenerationPrompt: true }).length;
    expect(long.code).toBe(2);
    expect(long.stderr).toContain(`--prompt is ${longFramed} tokens, the model's context is 128`);
    const none = run(['generate', checkpoint('qwen2'), '--chat', '--prompt', 'hi', ...CPU]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--chat: .*qwen2 has no chat template/);
  });

  it('info sizes a bare config.json before any training, and names what it refuses', () => {
    const config = join(root, 'qwen-like.json');
    writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(join(checkpoint('qwen2'), 'config.json'), 'utf8')), num_hidden_layers: 24, hidden_size: 896, num_attention_heads: 14, intermediate_size: 4864, vocab_size: 151936, head_dim: 64 }));
    const info = run(['info', config, '--json', ...CPU]);
    expect(info.code, info.stderr).toBe(0);
    // Qwen2.5-0.5B's shape: 494,032,768 parameters (tied embeddings, q/k/v biases).
    expect(JSON.parse(info.stdout).parameters.total).toBe(494_032_768);
    const gemma = join(root, 'gemma.json');
    writeFileSync(gemma, JSON.stringify({ model_type: 'gemma', architectures: ['GemmaForCausalLM'], hidden_size: 32 }));
    const refused = run(['info', gemma, ...CPU]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/model_type 'gemma' is not implemented/);
  });

  for (const family of ['qwen2', 'qwen3']) {
    it(`${family}: analyze, prune and publish keep the family`, () => {
      const report = join(root, `analysis-${family}`);
      const a = run(['analyze', checkpoint(family), '--data', data, '--max-tokens', '128', '--window', '16', '--cloze-items', '0', ...CPU, '--out', report]);
      expect(a.code, a.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(report, 'report.json'), 'utf8')).entries[0].result.removal).toHaveLength(3);

      const pruned = join(root, `pruned-${family}`);
      const p = run(['prune', checkpoint(family), '--plan', 'layers:1', '--data', data, '--max-tokens', '128', '--window', '16', '--cloze-items', '0', ...CPU, '--out', pruned]);
      expect(p.code, p.stderr).toBe(0);
      const config = JSON.parse(readFileSync(join(pruned, 'config.json'), 'utf8'));
      expect(config).toMatchObject({ model_type: family, num_hidden_layers: 2, max_window_layers: family === 'qwen2' ? 1 : 2 });
      expect(config.architectures).toEqual([family === 'qwen2' ? 'Qwen2ForCausalLM' : 'Qwen3ForCausalLM']);
      const weights = readFileSync(join(pruned, 'model.safetensors'));
      const names = Object.keys(JSON.parse(weights.subarray(8, 8 + Number(weights.readBigUInt64LE(0))).toString()));
      expect(names.some((n) => n === (family === 'qwen2' ? 'model.layers.1.self_attn.q_proj.bias' : 'model.layers.1.self_attn.q_norm.weight'))).toBe(true);
      expect(run(['eval', pruned, '--data', data, '--seq-len', '16', '--max-tokens', '64', '--json', ...CPU]).code).toBe(0);

      const card = join(root, `card-${family}`);
      const dry = run(['publish', pruned, '--repo', `alice/${family}-pruned`, '--dry-run', '--out', card]);
      expect(dry.code, dry.stderr).toBe(0);
      expect(JSON.parse(readFileSync(join(card, 'config.json'), 'utf8')).model_type).toBe(family);
      expect(readFileSync(join(card, 'README.md'), 'utf8')).toContain(`A 2-layer ${family === 'qwen2' ? 'Qwen2' : 'Qwen3'}-style language model`);
    });
  }
});

describe('train --init-from continues pretraining a checkpoint of any family under any scheme', () => {
  it('LNS on a pretrained Pre-LN Qwen2 (BF16, sharded): the run keeps its family and tokenizer', () => {
    const out = join(root, 'continued');
    const r = run(['train', '--init-from', checkpoint('qwen2'), '--norm', 'lns', '--data', data, '--steps', '2', '--seq-len', '16', '--batch-size', '2', '--eval-tokens', '64', '--warmup', '1', ...CPU, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^init: .*qwen2, its 'pre' weights continued under 'lns'$/m);
    const ckpt = join(out, 'checkpoints', readdirSync(join(out, 'checkpoints'))[0]!);
    const config = JSON.parse(readFileSync(join(ckpt, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 'qwen2', use_sliding_window: true, deepen: { norm_scheme: 'lns' } });
    expect(readFileSync(join(ckpt, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(checkpoint('qwen2'), 'tokenizer.json'), 'utf8'));
    const settings = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')).settings;
    expect(settings['init-from']).toBe(checkpoint('qwen2'));
    expect(settings.preset).toBeUndefined();

    // Without --norm the checkpoint keeps its scheme; a shape flag cannot apply to a pretrained model.
    const same = run(['train', '--init-from', checkpoint('qwen3'), '--data', data, '--steps', '1', '--seq-len', '16', '--batch-size', '2', '--eval-tokens', '64', '--warmup', '0', ...CPU, '--out', join(root, 'continued-pre'), '--quiet']);
    expect(same.code, same.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(root, 'continued-pre', 'run.json'), 'utf8')).settings.norm).toBe('pre');
    const kept = join(root, 'continued-pre', 'checkpoints', readdirSync(join(root, 'continued-pre', 'checkpoints'))[0]!);
    expect(JSON.parse(readFileSync(join(kept, 'tokenizer_config.json'), 'utf8')).chat_template).toBe(CHATML); // the chat template travels with the weights
    const clash = run(['train', '--init-from', checkpoint('qwen3'), '--preset', '9m', ...CPU]);
    expect(clash.code).toBe(2);
    expect(clash.stderr).toMatch(/--preset cannot be combined with --init-from/);
    const long = run(['train', '--init-from', checkpoint('qwen3'), '--seq-len', '512', '--data', data, ...CPU, '--out', join(root, 'too-long')]);
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(/--seq-len 512 exceeds the checkpoint's context \(max_position_embeddings 128\)/);
  });
});
