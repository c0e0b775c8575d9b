import * as tf from '@tensorflow/tfjs';
import { initBackend, TensorCountWatch } from '@deepen/backend';
import { Rng } from '@deepen/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate, KVCache, LlamaModel, sampleToken } from '../src/index.js';
import { maxAbsDiff, tinyConfig } from './helpers.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

describe('KV cache', () => {
  for (const scheme of ['pre', 'lns', 'post', 'sandwich']) {
    it(`gives the same logits as a full forward, position by position ('${scheme}')`, () => {
      const model = LlamaModel.create(tinyConfig(scheme), { seed: 11 });
      const tokens = [3, 1, 4, 1, 5, 9, 2, 6];
      const full = model.logits([tokens]);
      const cache = new KVCache(3);
      const prefix = model.logits([tokens.slice(0, 5)], { cache });
      const parts = [prefix];
      for (const t of tokens.slice(5)) parts.push(model.logits([[t]], { cache }));
      expect(cache.length).toBe(8);
      const stitched = tf.concat(parts, 1);
      expect(maxAbsDiff(stitched.dataSync(), full.dataSync())).toBeLessThan(2e-5);
      tf.dispose([full, stitched, ...parts]);
      cache.dispose();
      model.dispose();
    });
  }
});

describe('generate', () => {
  it('decodes the same tokens and logits with and without the cache (greedy and sampled)', () => {
    const model = LlamaModel.create(tinyConfig('lns'), { seed: 12 });
    for (const options of [{ temperature: 0 }, { temperature: 0.9, topK: 8, topP: 0.9, seed: 5 }]) {
      const logitsCached: Float32Array[] = [];
      const logitsFull: Float32Array[] = [];
      const cached = generate(model, [1, 2, 3], { maxNewTokens: 10, eosTokenId: null, ...options, onToken: (_, l) => logitsCached.push(l) });
      const full = generate(model, [1, 2, 3], { maxNewTokens: 10, eosTokenId: null, ...options, noCache: true, onToken: (_, l) => logitsFull.push(l) });
      expect(cached.tokens).toEqual(full.tokens);
      expect(cached.tokens).toHaveLength(10);
      logitsCached.forEach((l, i) => expect(maxAbsDiff(l, logitsFull[i]!)).toBeLessThan(2e-5));
    }
    model.dispose();
  });

  it('stops on EOS, respects the context limit and leaks nothing', () => {
    const model = LlamaModel.create(tinyConfig('pre'), { seed: 13 });
    const greedy = generate(model, [4, 5], { maxNewTokens: 6, eosTokenId: null });
    const eos = greedy.tokens[2]!;
    const stopped = generate(model, [4, 5], { maxNewTokens: 6, eosTokenId: eos });
    expect(stopped.finishReason).toBe('eos');
    expect(stopped.tokens).toEqual(greedy.tokens.slice(0, greedy.tokens.indexOf(eos) + 1));
    expect(greedy.finishReason).toBe('length');
    expect(() => generate(model, [1, 2, 3], { maxNewTokens: 30 })).toThrow(/prompt \(3\) \+ maxNewTokens \(30\) exceeds max_position_embeddings \(32\)/);
    expect(() => generate(model, [], { maxNewTokens: 3 })).toThrow(/prompt is empty/);
    const watch = new TensorCountWatch('generate');
    for (let i = 0; i < 3; i++) {
      generate(model, [1, 2], { maxNewTokens: 5, temperature: 1, seed: i });
      watch.check(i);
    }
    model.dispose();
  });
});

describe('sampleToken', () => {
  const logits = Float32Array.from([1, 3, 2, 0.5, 2.9]);
  it('is argmax at temperature 0, and with top-k 1 or a tiny top-p', () => {
    const rng = Rng.fromSeed(1);
    expect(sampleToken(logits, { temperature: 0 }, rng)).toBe(1);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits, { temperature: 1, topK: 1 }, rng)).toBe(1);
    for (let i = 0; i < 20; i++) expect(sampleToken(logits, { temperature: 1, topP: 0.01 }, rng)).toBe(1);
  });

  it('samples in proportion to softmax(logits / T) within the top-k', () => {
    const rng = Rng.fromSeed(2);
    const counts = new Array(5).fill(0);
    const n = 40_000;
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { temperature: 2, topK: 3 }, rng)]++;
    const kept = [1, 4, 2].map((i) => Math.exp((logits[i] as number) / 2));
    const z = kept.reduce((a, b) => a + b, 0);
    expect(counts[0]).toBe(0);
    expect(counts[3]).toBe(0);
    [1, 4, 2].forEach((i, j) => expect(Math.abs(counts[i] / n - kept[j]! / z)).toBeLessThan(0.01));
  });

  it('rejects bad settings', () => {
    expect(() => sampleToken(logits, { temperature: -1 }, Rng.fromSeed(1))).toThrow(/temperature/);
    expect(() => sampleToken(logits, { temperature: 1, topP: 0 }, Rng.fromSeed(1))).toThrow(/topP/);
  });
});
