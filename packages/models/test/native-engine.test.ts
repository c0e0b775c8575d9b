/**
 * The model on the native engine (fused RMSNorm, rotary, attention, SwiGLU and cross-entropy
 * kernels) against the same model on the pure-JS cpu engine (plain tf.* code): logits,
 * hidden states, losses with masks and ignored targets, every parameter's gradient, and
 * KV-cached decoding, under every normalization scheme. Cached decoding with a batch of one
 * runs on arrays through the engine's decode kernels (the KV cache written in place): it is
 * checked against the uncached forward and the tensor-cache path under every scheme, and on
 * the family checkpoints (windows, biases, q/k norms, scaled and dynamic rotary, tied
 * embeddings) against transformers' logits.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend, nativeEngineStatus, TensorCountWatch } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { generate, KVCache, LlamaModel, loadCheckpoint } from '../src/index.js';
import { ids, maxAbsDiff, tinyConfig } from './helpers.js';

const FAMILIES = fileURLToPath(new URL('./fixtures/families/', import.meta.url));

// Skipped only where this machine cannot build the native engine by design (no compiler or
// OpenBLAS); a broken build runs these and fails.
const status = nativeEngineStatus();
const skip = !status.available && status.expected;
const reason = status.available ? '' : status.reason;

const SCHEMES = ['pre', 'post', 'mix', 'lns', 'sandwich', 'deepnorm', 'layerscale', 'pre+scaled', 'sandwich+lns'];

interface Run {
  logits: Float32Array;
  hidden: Float32Array[];
  loss: number;
  tokenLosses: Float32Array;
  grads: Map<string, Float32Array>;
}

function runOn(engine: 'deepen-native' | 'cpu', scheme: string): Promise<Run> {
  return tf.setBackend(engine).then(() => {
    const model = LlamaModel.create(tinyConfig(scheme, { vocab_size: 50, hidden_size: 32, intermediate_size: 40 }), { seed: 5 });
    const input = ids([
      [1, 5, 9, 2, 7, 3, 44, 12],
      [4, 4, 8, 15, 0, 11, 49, 30],
    ]);
    const targets = ids([
      [5, 9, 2, -100, 3, 44, 12, -100],
      [4, 8, 15, 0, 11, -100, 30, 1],
    ]);
    const mask = tf.tensor2d([
      [1, 1, 1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1, 1, 1],
    ]);
    const { logits, hidden } = model.forward(input, { captureHidden: true });
    const run: Run = {
      logits: logits.dataSync() as Float32Array,
      hidden: hidden!.outputs.map((o) => o.dataSync() as Float32Array),
      loss: tf.tidy(() => model.loss(input, { targets, mask }).dataSync()[0] as number),
      tokenLosses: tf.tidy(() => model.tokenLosses(input).dataSync() as Float32Array),
      grads: new Map(),
    };
    const { value, grads } = tf.variableGrads(() => model.loss(input, { targets, mask }), model.trainableVariables());
    for (const [name, v] of model.params) run.grads.set(name, grads[v.name]!.dataSync() as Float32Array);
    tf.dispose([logits, ...hidden!.inputs, ...hidden!.outputs, value, ...Object.values(grads), input, targets, mask]);
    model.dispose();
    return run;
  });
}

describe.skipIf(skip)(`the model on the native engine${reason ? ` (skipped: ${reason})` : ''}`, () => {
  beforeAll(async () => {
    await initBackend({ engine: 'cpu' });
    await initBackend({ engine: 'native' });
  });

  for (const scheme of SCHEMES) {
    it(`computes what the cpu engine computes under '${scheme}': logits, hidden states, losses and every gradient`, async () => {
      const onNative = await runOn('deepen-native', scheme);
      const onCpu = await runOn('cpu', scheme);
      expect(maxAbsDiff(onNative.logits, onCpu.logits)).toBeLessThan(2e-5);
      onNative.hidden.forEach((h, i) => expect(maxAbsDiff(h, onCpu.hidden[i]!), `hidden ${i}`).toBeLessThan(5e-5));
      expect(Math.abs(onNative.loss - onCpu.loss)).toBeLessThan(2e-6);
      expect(maxAbsDiff(onNative.tokenLosses, onCpu.tokenLosses)).toBeLessThan(2e-5);
      for (const [name, g] of onCpu.grads) {
        const scale = Math.max(1e-3, ...Array.from(g, Math.abs));
        expect(maxAbsDiff(onNative.grads.get(name)!, g) / scale, `gradient of ${name}`).toBeLessThan(1e-4);
      }
    });
  }

  it('decodes with a KV cache exactly like a full forward pass, without leaking tensors', async () => {
    await tf.setBackend('deepen-native');
    const model = LlamaModel.create(tinyConfig('lns'), { seed: 11 });
    const tokens = [3, 1, 4, 1, 5, 9, 2, 6];
    const full = model.logits([tokens]);
    const expected = full.dataSync();
    const watch = new TensorCountWatch('cached decoding');
    tf.dispose(full);
    watch.check(0);
    const cache = new KVCache(3);
    const parts = [model.logits([tokens.slice(0, 5)], { cache })];
    for (const t of tokens.slice(5)) parts.push(model.logits([[t]], { cache }));
    expect(cache.layout).toBe('arrays');
    const stitched = tf.concat(parts, 1);
    expect(maxAbsDiff(stitched.dataSync(), expected)).toBeLessThan(2e-5);
    tf.dispose([stitched, ...parts]);
    cache.dispose();
    watch.check(1);
    model.dispose();
  });

  /** Logits [T, V] of `tokens` fed `prefix` at once and then one by one through `cache`, the cache checked flat in tensors. */
  function decodeStepwise(model: LlamaModel, tokens: number[], prefix: number, cache: KVCache, label: string): Float32Array[] {
    const rows: Float32Array[] = [];
    const watch = new TensorCountWatch(label);
    const take = (logits: tf.Tensor3D) => {
      const values = logits.dataSync() as Float32Array;
      const V = logits.shape[2];
      for (let t = 0; t < logits.shape[1]; t++) rows.push(values.slice(t * V, (t + 1) * V));
      logits.dispose();
    };
    take(model.logits([tokens.slice(0, prefix)], { cache }));
    watch.check(0);
    for (let t = prefix; t < tokens.length; t++) {
      take(model.logits([[tokens[t]!]], { cache }));
      watch.check(t);
    }
    return rows;
  }

  for (const scheme of SCHEMES) {
    it(`decodes on arrays under '${scheme}' as the full forward and the tensor cache do, growing the cache, the tensor count flat`, async () => {
      await tf.setBackend('deepen-native');
      const model = LlamaModel.create(tinyConfig(scheme, { vocab_size: 50, hidden_size: 32, intermediate_size: 40 }), { seed: 17 });
      const tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8];
      const full = model.logits([tokens]);
      const expected = full.dataSync() as Float32Array;
      full.dispose();
      // Room for 2 positions at first: the prefix of 3 and later steps grow it (2 -> 3 -> 6 -> 12).
      const arrays = new KVCache(3, { capacity: 2 });
      const onArrays = decodeStepwise(model, tokens, 3, arrays, `array-cache decoding (${scheme})`);
      expect(arrays.layout).toBe('arrays');
      expect(arrays.length).toBe(tokens.length);
      const tensors = new KVCache(3, { storage: 'tensors' });
      const onTensors = decodeStepwise(model, tokens, 3, tensors, `tensor-cache decoding (${scheme})`);
      expect(tensors.layout).toBe('tensors');
      const V = 50;
      onArrays.forEach((row, t) => {
        expect(maxAbsDiff(row, expected.subarray(t * V, (t + 1) * V)), `position ${t} against the full forward`).toBeLessThan(2e-5);
        expect(maxAbsDiff(row, onTensors[t]!), `position ${t} against the tensor cache`).toBeLessThan(2e-5);
      });
      arrays.dispose();
      tensors.dispose();
      model.dispose();
    });
  }

  it('returns the hidden states and skips layers on arrays as the tensor path does', async () => {
    await tf.setBackend('deepen-native');
    const model = LlamaModel.create(tinyConfig('sandwich+lns'), { seed: 3 });
    const run = (storage: 'auto' | 'tensors') => {
      const cache = new KVCache(3, { storage });
      const steps = [[4, 2, 7], [9], [1]].map((feed) => model.forward([feed], { cache, captureHidden: true, skipLayers: [1] }));
      expect(cache.layout).toBe(storage === 'auto' ? 'arrays' : 'tensors');
      cache.dispose();
      const out = steps.map((s) => ({ logits: s.logits.dataSync().slice(), layers: s.hidden!.layers, hidden: s.hidden!.outputs.map((o) => o.dataSync().slice()) }));
      tf.dispose(steps.flatMap((s) => [s.logits, ...s.hidden!.inputs, ...s.hidden!.outputs]));
      return out;
    };
    const onArrays = run('auto');
    const onTensors = run('tensors');
    onArrays.forEach((step, i) => {
      expect(step.layers).toEqual([0, 2]);
      expect(step.layers).toEqual(onTensors[i]!.layers);
      expect(maxAbsDiff(step.logits, onTensors[i]!.logits)).toBeLessThan(2e-5);
      step.hidden.forEach((h, j) => expect(maxAbsDiff(h, onTensors[i]!.hidden[j]!)).toBeLessThan(2e-5));
    });
    model.dispose();
  });

  it('generates the same tokens and logits on arrays as through tfjs ops, and leaks nothing', async () => {
    await tf.setBackend('deepen-native');
    const model = LlamaModel.create(tinyConfig('lns'), { seed: 12 });
    for (const options of [{ temperature: 0 }, { temperature: 0.9, topK: 8, seed: 5 }]) {
      const logits: Record<string, Float32Array[]> = { auto: [], tensors: [] };
      const results = (['auto', 'tensors'] as const).map((cacheStorage) =>
        generate(model, [1, 2, 3], { maxNewTokens: 12, eosTokenId: null, cacheStorage, ...options, onToken: (_, l) => logits[cacheStorage]!.push(l) }),
      );
      expect(results[0]!.tokens).toEqual(results[1]!.tokens);
      logits.auto!.forEach((l, i) => expect(maxAbsDiff(l, logits.tensors![i]!)).toBeLessThan(2e-5));
    }
    const watch = new TensorCountWatch('generate on arrays');
    for (let i = 0; i < 3; i++) {
      generate(model, [1, 2], { maxNewTokens: 5, temperature: 1, seed: i });
      watch.check(i);
    }
    model.dispose();
  });

  it('decodeLogits gives the last row of logits() on arrays and on tensors, into `out` when given', async () => {
    await tf.setBackend('deepen-native');
    for (const tied of [false, true]) {
      const model = LlamaModel.create(tinyConfig('pre', { tie_word_embeddings: tied }), { seed: 21 });
      for (const storage of ['auto', 'tensors'] as const) {
        const reference = new KVCache(3, { storage: 'tensors' });
        const cache = new KVCache(3, { storage });
        const out = new Float32Array(16);
        for (const feed of [[5, 1, 7], [2], [9]]) {
          const full = model.logits([feed], { cache: reference });
          const want = full.dataSync().slice((feed.length - 1) * 16);
          full.dispose();
          expect(maxAbsDiff(model.decodeLogits(feed, cache), want), `${storage}, tied ${tied}`).toBeLessThan(2e-5);
        }
        expect(cache.length).toBe(5);
        expect(cache.layout).toBe(storage === 'auto' ? 'arrays' : 'tensors');
        expect(model.decodeLogits([3], cache, out)).toBe(out);
        expect(() => model.decodeLogits([3], cache, new Float32Array(5))).toThrow(/out holds 5 values, the vocabulary 16/);
        reference.dispose();
        cache.dispose();
      }
      model.dispose();
    }
  });

  it('refuses to continue an array cache where arrays do not serve, naming why', async () => {
    await tf.setBackend('deepen-native');
    const model = LlamaModel.create(tinyConfig('pre'), { seed: 1 });
    const cache = new KVCache(3);
    model.logits([[1, 2]], { cache }).dispose();
    expect(() => model.logits([[3], [4]], { cache })).toThrow(/holds arrays \(2 positions\) and cannot continue as tensors; arrays serve the native engine with a batch of one only/);
    await tf.setBackend('cpu');
    expect(() => model.logits([[3]], { cache })).toThrow(/holds arrays/);
    await tf.setBackend('deepen-native');
    expect(() => model.logits([[99]], { cache })).toThrow(/token id 99 at position 2 is outside the vocabulary \[0, 16\)/);
    expect(cache.length).toBe(2);
    expect(() => new KVCache(3, { storage: 'tensors' }).settle('arrays')).toThrow(/storage 'tensors' and cannot hold arrays/);
    cache.dispose();
    model.dispose();
  });

  for (const name of ['mistral-window', 'qwen2-layer-types', 'qwen3', 'llama-yarn-rope', 'llama-bias-gqa', 'llama-tied-bf16-sharded']) {
    it(`${name}: decoding on arrays position by position gives transformers' logits (windows, biases, q/k norms, scaled rotary, tied head)`, async () => {
      await tf.setBackend('deepen-native');
      const model = loadCheckpoint(join(FAMILIES, name));
      const expected = JSON.parse(readFileSync(join(FAMILIES, name, 'expected.json'), 'utf8')) as { input_ids: number[][]; logits: number[][][] };
      const row = expected.input_ids[0]!;
      const cache = new KVCache(model.config.num_hidden_layers, { capacity: 4 });
      let maxError = 0;
      for (let t = 0; t < row.length; t++) {
        const step = model.logits([[row[t]!]], { cache });
        const values = step.dataSync();
        step.dispose();
        values.forEach((v, k) => (maxError = Math.max(maxError, Math.abs(v - expected.logits[0]![t]![k]!))));
      }
      expect(cache.layout).toBe('arrays');
      cache.dispose();
      expect(maxError).toBeLessThan(1e-4);
      model.dispose();
    });
  }

  it('llama-dynamic-rope: past max_position_embeddings, decoding on arrays gives what the tensor cache gives', async () => {
    // Dynamic NTK recomputes the frequencies from each forward's length, so a step-by-step
    // decode differs from the full forward past the limit (as in transformers); both caches must agree.
    await tf.setBackend('deepen-native');
    const model = loadCheckpoint(join(FAMILIES, 'llama-dynamic-rope'));
    const expected = JSON.parse(readFileSync(join(FAMILIES, 'llama-dynamic-rope', 'expected.json'), 'utf8')) as { input_ids: number[][] };
    const row = expected.input_ids[0]!;
    expect(row.length).toBeGreaterThan(model.config.max_position_embeddings);
    const caches = [new KVCache(model.config.num_hidden_layers), new KVCache(model.config.num_hidden_layers, { storage: 'tensors' })] as const;
    const onArrays = decodeStepwise(model, row, 2, caches[0], 'dynamic rope on arrays');
    const onTensors = decodeStepwise(model, row, 2, caches[1], 'dynamic rope on tensors');
    expect(caches.map((c) => c.layout)).toEqual(['arrays', 'tensors']);
    onArrays.forEach((r, t) => expect(maxAbsDiff(r, onTensors[t]!), `position ${t}`).toBeLessThan(2e-5));
    for (const c of caches) c.dispose();
    model.dispose();
  });
});
