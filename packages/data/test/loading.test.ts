import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BatchIterator, SequenceSet, sequentialBatches, tokenizeCorpus, Tokenizer, trainByteLevelBpe, type Corpus, type TokenizedSplit } from '../src/index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'deepen-load-'));

/** Documents of known token ids: doc d holds 100*(d+1) + 0..len-1. */
function split(lengths: number[]): TokenizedSplit {
  const offsets = new Float64Array(lengths.length + 1);
  lengths.forEach((l, i) => (offsets[i + 1] = offsets[i]! + l));
  const tokens = new Uint16Array(offsets[lengths.length]!);
  lengths.forEach((l, d) => {
    for (let j = 0; j < l; j++) tokens[offsets[d]! + j] = 100 * (d + 1) + j;
  });
  return { tokens, offsets };
}

describe('packing', () => {
  it('packed: documents joined with EOS and cut into sequences, targets shifted by one', () => {
    const set = new SequenceSet(split([3, 2, 4]), { mode: 'packed', seqLen: 4, bos: null, eos: 2, pad: 0 });
    // stream: 100 101 102 2 | 200 201 2 | 300 301 302 303 2  (12 tokens) -> floor(11 / 4) = 2 sequences
    expect(set.count).toBe(2);
    const b = [...sequentialBatches(set, 8)][0]!;
    expect(Array.from(b.inputs)).toEqual([100, 101, 102, 2, 200, 201, 2, 300]);
    expect(Array.from(b.targets)).toEqual([101, 102, 2, 200, 201, 2, 300, 301]);
    expect(Array.from(b.mask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    const withBos = new SequenceSet(split([3, 2]), { mode: 'packed', seqLen: 3, bos: 1, eos: 2, pad: 0 });
    const c = [...sequentialBatches(withBos, 8)][0]!;
    expect(Array.from(c.inputs)).toEqual([1, 100, 101, 102, 2, 1]);
    expect(Array.from(c.targets)).toEqual([100, 101, 102, 2, 1, 200]);
  });

  it('document: one padded, truncated sequence per document with a loss mask', () => {
    const set = new SequenceSet(split([2, 6]), { mode: 'document', seqLen: 4, bos: 1, eos: 2, pad: 3 });
    expect(set.count).toBe(2);
    const [b] = [...sequentialBatches(set, 2)];
    // doc 0 is <s> 100 101 </s>: inputs are its first T tokens, targets the same shifted by one, then padding.
    expect(Array.from(b!.inputs.subarray(0, 4))).toEqual([1, 100, 101, 2]);
    expect(Array.from(b!.targets.subarray(0, 4))).toEqual([100, 101, 2, -100]);
    expect(Array.from(b!.mask.subarray(0, 4))).toEqual([1, 1, 1, 0]);
    // doc 1 is longer than T + 1 tokens: truncated, no EOS, everything counts.
    expect(Array.from(b!.inputs.subarray(4))).toEqual([1, 200, 201, 202]);
    expect(Array.from(b!.targets.subarray(4))).toEqual([200, 201, 202, 203]);
    expect(Array.from(b!.mask.subarray(4))).toEqual([1, 1, 1, 1]);
    expect(set.tokensPerEpoch).toBe(3 + 4);
  });
});

describe('BatchIterator', () => {
  const set = () => new SequenceSet(split([50, 70, 30, 90]), { mode: 'packed', seqLen: 8, bos: null, eos: 2, pad: 0 });

  it('covers every sequence once per epoch, in a seeded order that changes per epoch', () => {
    const s = set();
    const it1 = new BatchIterator(s, 5, { seed: 3 });
    const epoch = (iter: BatchIterator) => {
      const seen: number[] = [];
      while (seen.length < s.count) seen.push(...iter.next().indices);
      return seen;
    };
    const first = epoch(it1);
    expect([...first].sort((a, b) => a - b)).toEqual(Array.from({ length: s.count }, (_, i) => i));
    expect(first).toEqual(epoch(new BatchIterator(s, 5, { seed: 3 })));
    expect(first).not.toEqual(epoch(new BatchIterator(s, 5, { seed: 4 })));
    expect(new BatchIterator(s, s.count, { shuffle: false }).next().indices).toEqual(Array.from({ length: s.count }, (_, i) => i));
  });

  it('resumes exactly from a saved state, across epoch boundaries', () => {
    const s = set();
    const uninterrupted = new BatchIterator(s, 7, { seed: 11 });
    const reference = Array.from({ length: 20 }, () => uninterrupted.next());
    const first = new BatchIterator(s, 7, { seed: 11 });
    for (let i = 0; i < 9; i++) first.next();
    const saved = JSON.parse(JSON.stringify(first.state()));
    const resumed = new BatchIterator(s, 7, { state: saved });
    for (let i = 9; i < 20; i++) {
      const b = resumed.next();
      expect(b.indices).toEqual(reference[i]!.indices);
      expect(Array.from(b.inputs)).toEqual(Array.from(reference[i]!.inputs));
    }
    expect(saved.epoch).toBeGreaterThan(0);
  });

  it('refuses a state made for other data, and data shorter than a sequence', () => {
    const s = set();
    const state = new BatchIterator(s, 2).state();
    const other = new SequenceSet(split([50, 70]), { mode: 'packed', seqLen: 8, bos: null, eos: 2, pad: 0 });
    expect(() => new BatchIterator(other, 2, { state })).toThrow(/loader state is for \d+ sequences but the data has \d+/);
    const tiny = new SequenceSet(split([2]), { mode: 'packed', seqLen: 8, bos: null, eos: 2, pad: 0 });
    expect(() => new BatchIterator(tiny, 2)).toThrow(/shorter than one sequence of 8 tokens/);
  });
});

describe('token cache', () => {
  const corpus = (texts: string[], name = 'mini'): Corpus => ({
    name,
    train: texts.map((text, i) => ({ id: `d${i}`, text })),
    validation: [{ id: 'v', text: 'validation text here' }],
    fingerprint: `${name}:${texts.join('|')}`,
  });
  const tokenizer = Tokenizer.fromJSON(trainByteLevelBpe(['the cat sat on the mat, the cat sat'], { vocabSize: 280 }));

  it('tokenizes once, then reads uint16 ids back from disk', async () => {
    const cacheDir = tmp();
    const c = corpus(['the cat', 'sat on the mat']);
    const first = await tokenizeCorpus(c, tokenizer, { cacheDir });
    expect(first.fromCache).toBe(false);
    const second = await tokenizeCorpus(c, tokenizer, { cacheDir });
    expect(second.fromCache).toBe(true);
    expect(second.train.tokens).toBeInstanceOf(Uint16Array);
    expect(Array.from(second.train.tokens)).toEqual([...tokenizer.encode('the cat'), ...tokenizer.encode('sat on the mat')]);
    expect(Array.from(second.train.offsets)).toEqual([0, tokenizer.encode('the cat').length, first.train.tokens.length]);
    const index = JSON.parse(readFileSync(join(second.dir, 'index.json'), 'utf8'));
    expect(index).toMatchObject({ format: 1, dtype: 'uint16', splits: { train: { documents: 2 } } });
  });

  it('rebuilds when the corpus or tokenizer changes, or the entry is damaged', async () => {
    const cacheDir = tmp();
    const a = await tokenizeCorpus(corpus(['the cat']), tokenizer, { cacheDir });
    const b = await tokenizeCorpus(corpus(['the mat']), tokenizer, { cacheDir });
    expect(b.fromCache).toBe(false);
    expect(b.dir).not.toBe(a.dir);
    const other = Tokenizer.fromJSON(trainByteLevelBpe(['a different corpus entirely'], { vocabSize: 270 }));
    expect((await tokenizeCorpus(corpus(['the cat']), other, { cacheDir })).fromCache).toBe(false);
    writeFileSync(join(a.dir, 'train.tokens.bin'), Buffer.from([1, 2, 3])); // truncated
    const repaired = await tokenizeCorpus(corpus(['the cat']), tokenizer, { cacheDir });
    expect(repaired.fromCache).toBe(false);
    expect(Array.from(repaired.train.tokens)).toEqual(tokenizer.encode('the cat'));
    expect((await tokenizeCorpus(corpus(['the cat']), tokenizer, { cacheDir })).fromCache).toBe(true);
    expect(readdirSync(join(cacheDir, 'tokens')).filter((f) => f.startsWith('.'))).toEqual([]); // no temporary leftovers
  });
});
