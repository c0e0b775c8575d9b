import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, TensorCountWatch } from '@deepen/backend';
import { Rng } from '@deepen/core';
import { sequentialBatches, SequenceSet, Tokenizer, trainByteLevelBpe } from '@deepen/data';
import { BLOCK, generate, LlamaModel, layerPrefix, makeConfig } from '@deepen/models';
import { parse } from 'parse5';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel, buildClozeTask, depthDiagnostics, evaluateMultipleChoice, scoreContinuations, slidingWindowPerplexity, writeAnalysisReport } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

function model(norm = 'pre', layers = 4, vocab = 40): LlamaModel {
  return LlamaModel.create(
    makeConfig({ vocab_size: vocab, hidden_size: 16, intermediate_size: 32, num_hidden_layers: layers, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, deepen: { norm_scheme: norm } }),
    { seed: 4 },
  );
}

/** Makes a Pre-LN block an exact identity: both sublayers output zero. */
function makeIdentity(m: LlamaModel, layer: number): void {
  for (const s of [BLOCK.o, BLOCK.down]) {
    const p = m.param(layerPrefix(layer) + s);
    tf.tidy(() => p.assign(tf.zerosLike(p)));
  }
}

const tokens = (n: number, seed = 1) => {
  const rng = Rng.fromSeed(seed);
  return Uint32Array.from({ length: n }, () => 3 + rng.int(37));
};

describe('sliding-window perplexity', () => {
  it('scores every token once; one window equals the model loss on the whole sequence', () => {
    const m = model();
    const t = tokens(40);
    const whole = slidingWindowPerplexity(m, t, { window: 64, perToken: true });
    expect(whole.tokens).toBe(39);
    const direct = tf.tidy(() => m.tokenLosses(tf.tensor2d([Array.from(t)], undefined, 'int32')).dataSync());
    for (let i = 1; i < 40; i++) expect(whole.perToken![i]).toBeCloseTo(direct[i - 1]!, 5);
    expect(Number.isNaN(whole.perToken![0])).toBe(true);
    expect(whole.loss).toBeCloseTo(Array.from(direct).slice(0, 39).reduce((a, b) => a + b, 0) / 39, 5);
    for (const [window, stride] of [[16, 15], [16, 4], [8, 3], [8, 1]] as const) {
      const r = slidingWindowPerplexity(m, t, { window, stride, perToken: true, batchSize: 3 });
      expect(r.tokens).toBe(39);
      expect(Array.from(r.perToken!).filter(Number.isFinite)).toHaveLength(39);
      // Tokens early enough to be scored with their whole history match the full-sequence loss.
      for (let i = 1; i <= window - stride; i++) expect(r.perToken![i]).toBeCloseTo(direct[i - 1]!, 5);
      // Later ones see exactly the last window - stride or more tokens: check one by hand.
      const j = 30;
      const begin = Math.max(0, Math.min(1 + Math.ceil((j - 1 + 1) / stride) * stride, 40) - window);
      const windowed = tf.tidy(() => m.tokenLosses(tf.tensor2d([Array.from(t.subarray(begin, j + 1))], undefined, 'int32')).dataSync());
      expect(r.perToken![j]).toBeCloseTo(windowed[j - begin - 1]!, 5);
    }
    expect(() => slidingWindowPerplexity(m, t, { window: 100 })).toThrow(/window must be an integer in \[2, 64\]/);
    expect(() => slidingWindowPerplexity(m, t, { window: 8, stride: 8 })).toThrow(/stride must be an integer in \[1, window - 1\]/);
    m.dispose();
  });
});

describe('continuations and tasks', () => {
  it('scores pairs of different lengths in one batch exactly as one at a time, leaving no tensor behind', () => {
    const m = model();
    const pairs = [
      { context: [5, 9, 12, 7, 3, 30], continuation: [11, 2] },
      { context: [8], continuation: [17, 33, 4] },
      { context: [21, 22], continuation: [6] },
    ];
    const watch = new TensorCountWatch('scoreContinuations');
    const batched = scoreContinuations(m, pairs, 3);
    watch.check(0);
    const alone = pairs.map((p) => scoreContinuations(m, [p], 1)[0]!);
    watch.check(1);
    expect(batched.map((s) => s.tokens)).toEqual([2, 3, 1]);
    batched.forEach((s, i) => {
      expect(s.greedy).toBe(alone[i]!.greedy);
      expect(s.logprob).toBeCloseTo(alone[i]!.logprob, 5);
      expect(s.logprob).toBeLessThan(0);
    });
    m.dispose();
  });

  it('scores log-probabilities by hand and recognises greedy continuations', () => {
    const m = model();
    const context = [5, 9, 12, 7];
    const greedy = generate(m, context, { maxNewTokens: 3, eosTokenId: null }).tokens;
    const other = greedy.map((g) => (g + 1) % 40);
    const [a, b] = scoreContinuations(m, [{ context, continuation: greedy }, { context, continuation: other }]);
    expect(a!.greedy).toBe(true);
    expect(b!.greedy).toBe(false);
    const logits = m.logits([[...context, ...other].slice(0, -1)]);
    const lp = tf.tidy(() => tf.logSoftmax(logits).arraySync() as number[][][]);
    const want = other.reduce((s, tok, j) => s + lp[0]![context.length - 1 + j]![tok]!, 0);
    expect(b!.logprob).toBeCloseTo(want, 4);
    expect(a!.logprob).toBeGreaterThan(b!.logprob);
    logits.dispose();
    m.dispose();
  });

  it('multiple choice picks the likeliest choice; cloze items are deterministic', () => {
    const tokenizer = Tokenizer.fromJSON(trainByteLevelBpe(['the cat sat on the mat and the dog ran'], { vocabSize: 290 }));
    const m = model('lns', 2, tokenizer.vocabSize);
    const context = 'the cat';
    const greedyText = tokenizer.decode(generate(m, tokenizer.encode(context), { maxNewTokens: 2, eosTokenId: null }).tokens);
    const scores = scoreContinuations(m, ['zz', greedyText].map((c) => ({ context: tokenizer.encode(context), continuation: tokenizer.encode(c) })));
    const gold = scores[1]!.logprob > scores[0]!.logprob ? 1 : 0;
    expect(evaluateMultipleChoice(m, tokenizer, [{ context, choices: ['zz', greedyText], gold }]).accuracy).toBe(1);
    expect(evaluateMultipleChoice(m, tokenizer, [{ context, choices: ['zz', greedyText], gold: 1 - gold }]).accuracy).toBe(0);
    const docs = [{ id: 'a', text: 'We hold these truths to be evident. All people deserve liberty. The government protects freedom. '.repeat(8) }];
    const items = buildClozeTask(docs, { items: 5, contextWords: 10 });
    expect(items.length).toBeGreaterThan(0);
    expect(buildClozeTask(docs, { items: 5, contextWords: 10 })).toEqual(items);
    for (const item of items) expect(item.target).toMatch(/^ [A-Za-z]{4,}$/);
    m.dispose();
  });
});

describe('depth diagnostics', () => {
  it('gives an identity block Block Influence 0 and angular distance 0, and removing it changes nothing', () => {
    const m = model('pre', 4);
    makeIdentity(m, 2);
    const set = new SequenceSet({ tokens: Uint16Array.from(tokens(200)), offsets: Float64Array.from([0, 200]) }, { mode: 'packed', seqLen: 16, bos: null, eos: 2, pad: 0 });
    const watch = new TensorCountWatch('depth diagnostics');
    watch.check();
    const d = depthDiagnostics(m, sequentialBatches(set, 4));
    watch.check();
    expect(d.layers[2]!.blockInfluence).toBeCloseTo(0, 6);
    expect(d.angularAllTokens[2]![0]).toBeCloseTo(0, 3);
    expect(d.angularLastToken[2]![0]).toBeCloseTo(0, 3);
    expect(d.layers[1]!.blockInfluence).toBeGreaterThan(1e-3);
    expect(d.angularAllTokens.map((r) => r.length)).toEqual([4, 3, 2, 1]);
    // Variance after a block, computed directly on the same tokens.
    const hidden = tf.tidy(() => {
      const batches = [...sequentialBatches(set, 100)][0]!;
      const { hidden } = m.forward(tf.tensor2d(batches.inputs, [batches.batchSize, 16], 'int32'), { captureHidden: true });
      return tf.moments(hidden!.outputs[1]!).variance.dataSync()[0]!;
    });
    expect(d.layers[1]!.outputVariance).toBeCloseTo(hidden, 3);
    const analysis = analyzeModel(m, Tokenizer.fromJSON(trainByteLevelBpe(['x'], { vocabSize: 260 })), {
      text: { tokens: Uint16Array.from(tokens(300)), offsets: Float64Array.from([0, 300]) },
      window: 16,
    });
    expect(analysis.removal[2]!.perplexityIncrease).toBeCloseTo(0, 6);
    expect(Math.abs(analysis.removal[1]!.perplexityIncrease)).toBeGreaterThan(1e-3);
    m.dispose();
  });
});

describe('reports', () => {
  it('writes parseable HTML with every chart, JSON with every number, and PNGs', () => {
    const tokenizer = Tokenizer.fromJSON(trainByteLevelBpe(['x'], { vocabSize: 260 }));
    const entries = ['pre', 'lns'].map((norm) => {
      const m = model(norm, 3, 260);
      const result = analyzeModel(m, tokenizer, { text: { tokens: Uint16Array.from(tokens(200)), offsets: Float64Array.from([0, 200]) }, window: 16 });
      m.dispose();
      return { name: norm, checkpoint: `mem:${norm}`, result };
    });
    const dir = mkdtempSync(join(tmpdir(), 'deepen-report-'));
    const files = writeAnalysisReport(dir, entries);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    const document = parse(html);
    const figures: string[] = [];
    const walk = (node: { nodeName: string; attrs?: Array<{ name: string; value: string }>; childNodes?: unknown[] }) => {
      if (node.nodeName === 'figure') {
        const svg = (node.childNodes as Array<{ nodeName: string }>).some((c) => c.nodeName === 'svg');
        if (svg) figures.push(node.attrs!.find((a) => a.name === 'id')!.value);
      }
      for (const c of node.childNodes ?? []) walk(c as typeof node);
    };
    walk(document as never);
    expect(figures).toEqual(['variance', 'block-influence', 'removal-perplexity', 'angular-pre', 'angular-lns']);
    for (const f of figures) expect(files).toEqual(expect.arrayContaining([`${f}.svg`, `${f}.png`]));
    expect(readdirSync(dir)).toContain('report.json');
    const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(json.entries[1].result.depth.layers).toHaveLength(3);
    expect(json.entries[1].result.removal).toHaveLength(3);
  });
});
