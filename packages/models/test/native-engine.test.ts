/**
 * The model on the native engine (fused RMSNorm, rotary, attention, SwiGLU and cross-entropy
 * kernels) against the same model on the pure-JS cpu engine (plain tf.* code): logits,
 * hidden states, losses with masks and ignored targets, every parameter's gradient, and
 * KV-cached decoding, under every normalization scheme.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, nativeEngineStatus, TensorCountWatch } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { KVCache, LlamaModel } from '../src/index.js';
import { ids, maxAbsDiff, tinyConfig } from './helpers.js';

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
    const stitched = tf.concat(parts, 1);
    expect(maxAbsDiff(stitched.dataSync(), expected)).toBeLessThan(2e-5);
    tf.dispose([stitched, ...parts]);
    cache.dispose();
    watch.check(1);
    model.dispose();
  });
});
