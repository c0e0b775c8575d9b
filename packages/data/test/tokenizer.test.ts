import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import rust from 'tokenizers';
import { beforeAll, describe, expect, it } from 'vitest';
import { cachedTokenizer, stateOfTheUnion, Tokenizer, trainByteLevelBpe, type Corpus } from '../src/index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'deepen-tok-'));
let sotu: Corpus;
let small: Corpus;

beforeAll(() => {
  sotu = stateOfTheUnion();
  small = { ...sotu, name: 'sotu-small', train: sotu.train.slice(0, 30), fingerprint: `${sotu.fingerprint}-small` };
});

const TRICKY = [
  'Hello  world!\n\n  Tabs\tand  été café 😀 12345 don\'t <s>x</s> end   ',
  ' leading space',
  'trailing space ',
  '\n\n\n',
  'Ünïcödé — “quotes” and ½ ¼ ² ß ﬁ 中文 한국어',
  '',
];

describe('byte-level BPE training', () => {
  it('is deterministic and reaches the requested vocabulary size', () => {
    const texts = small.train.map((d) => d.text);
    const a = trainByteLevelBpe(texts, { vocabSize: 1024 });
    const b = trainByteLevelBpe([...texts].reverse(), { vocabSize: 1024 });
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    expect(Object.keys(a.model.vocab)).toHaveLength(1024);
    expect(a.model.merges).toHaveLength(1024 - 4 - 256);
    expect(a.added_tokens.map((t) => [t.id, t.content])).toEqual([[0, '<unk>'], [1, '<s>'], [2, '</s>'], [3, '<pad>']]);
    expect(a.model.merges[0]).toBe('Ġ t'); // " t" is the most frequent pair in English prose
  });

  it('stops early when the text runs out of repeated pairs, and rejects impossible sizes', () => {
    const json = trainByteLevelBpe(['abab abab'], { vocabSize: 5000 });
    expect(Object.keys(json.model.vocab).length).toBeLessThan(300);
    expect(() => trainByteLevelBpe(['x'], { vocabSize: 100 })).toThrow(/at least 260/);
  });
});

describe('Tokenizer', () => {
  it('train → save → reload gives identical ids, and decoding round trips', () => {
    const json = trainByteLevelBpe(small.train.map((d) => d.text), { vocabSize: 2048 });
    const path = join(tmp(), 'tokenizer.json');
    Tokenizer.fromJSON(json).save(path);
    const reloaded = Tokenizer.fromFile(path);
    const fresh = Tokenizer.fromJSON(json);
    expect(reloaded.engine).toBe('byte-level-bpe');
    expect(reloaded.fingerprint).toBe(fresh.fingerprint);
    for (const text of [...TRICKY, sotu.validation[0]!.text]) {
      const ids = fresh.encode(text);
      expect(reloaded.encode(text)).toEqual(ids);
      expect(reloaded.decode(ids)).toBe(text);
    }
    expect(reloaded.special).toEqual({ bos: 1, eos: 2, pad: 3, unk: 0 });
    expect(reloaded.vocabSize).toBe(2048);
    expect(reloaded.decode([1, ...reloaded.encode('hi'), 2], { skipSpecialTokens: true })).toBe('hi');
  });

  it('keeps a U+FEFF at the start of a text and after a special token', () => {
    const json = trainByteLevelBpe(small.train.map((d) => d.text), { vocabSize: 512 });
    for (const engine of ['auto', 'tokenizers.js'] as const) {
      const tokenizer = Tokenizer.fromJSON(json, 'trained', { engine });
      for (const text of ['\uFEFFhello', '<s>\uFEFFx', '\uFEFF', 'a\uFEFFb</s>\uFEFF\uFEFF']) {
        expect(tokenizer.decode(tokenizer.encode(text)), `${engine}: ${JSON.stringify(text)}`).toBe(text);
      }
      expect(tokenizer.decode(tokenizer.encode('<s>\uFEFFx'), { skipSpecialTokens: true })).toBe('\uFEFFx');
    }
  });

  it('encodes exactly as the Hugging Face tokenizers libraries (Rust and tokenizers.js) do', async () => {
    const json = trainByteLevelBpe(small.train.map((d) => d.text), { vocabSize: 3000 });
    const path = join(tmp(), 'tokenizer.json');
    writeFileSync(path, JSON.stringify(json));
    const ours = Tokenizer.fromFile(path);
    const reference = rust.Tokenizer.fromFile(path);
    const viaJs = Tokenizer.fromJSON(json, 'trained', { engine: 'tokenizers.js' });
    expect(viaJs.engine).toBe('tokenizers.js');
    for (const text of [...TRICKY, ...sotu.validation.slice(0, 3).map((d) => d.text)]) {
      const ids = ours.encode(text);
      expect((await reference.encode(text, null, { addSpecialTokens: false })).getIds()).toEqual(ids);
      expect(viaJs.encode(text)).toEqual(ids);
      expect(await reference.decode(ids, false)).toBe(ours.decode(ids));
    }
  });

  it('loads a LLaMA-style BPE with byte fallback and matches the Rust library', async () => {
    // SentencePiece-converted BPE as in LLaMA / Mistral: ▁ for spaces, byte tokens <0xNN> for unknown characters.
    const merges = ['▁ t', 'h e', '▁t he', 'a n', '▁ an', '▁an d', 'o r', '▁ w', '▁w or', 'l d', '▁wor ld'];
    const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
    for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
    for (const piece of ['▁', 't', 'h', 'e', 'a', 'n', 'd', 'o', 'r', 'w', 'l', ...merges.map((m) => m.replace(' ', ''))]) vocab[piece] ??= Object.keys(vocab).length;
    const json = {
      version: '1.0',
      added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
      },
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
    };
    const path = join(tmp(), 'llama-tokenizer.json');
    writeFileSync(path, JSON.stringify(json));
    const ours = Tokenizer.fromFile(path);
    expect(ours.engine).toBe('tokenizers.js');
    expect(ours.special).toMatchObject({ bos: 1, eos: 2, unk: 0 });
    const reference = rust.Tokenizer.fromFile(path);
    for (const text of ['the world and the world', 'the wörld ✓', 'hello there']) {
      const ids = ours.encode(text);
      expect((await reference.encode(text, null, { addSpecialTokens: false })).getIds()).toEqual(ids);
      expect(ours.decode(ids)).toBe(await reference.decode(ids, false));
    }
    expect(ours.decode(ours.encode('the wörld ✓'))).toBe('the wörld ✓');
  });

  it('reports unreadable tokenizer files by name', () => {
    const dir = tmp();
    expect(() => Tokenizer.fromFile(join(dir, 'none.json'))).toThrow(/none\.json: tokenizer file not found/);
    writeFileSync(join(dir, 'bad.json'), '{"model": ');
    expect(() => Tokenizer.fromFile(join(dir, 'bad.json'))).toThrow(/bad\.json: not valid JSON/);
    writeFileSync(join(dir, 'nomodel.json'), '{}');
    expect(() => Tokenizer.fromFile(join(dir, 'nomodel.json'))).toThrow(/nomodel\.json: tokenizer.json has no "model"/);
  });
});

describe('cached default tokenizer', () => {
  it('trains once per corpus and vocabulary size, then loads from disk', () => {
    const cacheDir = tmp();
    const first = cachedTokenizer(small, { vocabSize: 600, cacheDir });
    expect(first.trained).toBe(true);
    const second = cachedTokenizer(small, { vocabSize: 600, cacheDir });
    expect(second.trained).toBe(false);
    expect(second.path).toBe(first.path);
    expect(second.tokenizer.fingerprint).toBe(first.tokenizer.fingerprint);
    expect(cachedTokenizer(small, { vocabSize: 700, cacheDir }).trained).toBe(true);
    writeFileSync(first.path, '{"broken"');
    const rebuilt = cachedTokenizer(small, { vocabSize: 600, cacheDir });
    expect(rebuilt.trained).toBe(true);
    expect(JSON.parse(readFileSync(first.path, 'utf8')).model.type).toBe('BPE');
  });
});
