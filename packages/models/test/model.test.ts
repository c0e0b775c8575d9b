import * as tf from '@tensorflow/tfjs';
import { initBackend, TensorCountWatch } from '@deepen/backend';
import { Rng } from '@deepen/core';
import { deepNormBeta, lnsFactor } from '@deepen/norms';
import { beforeAll, describe, expect, it } from 'vitest';
import { BLOCK, LlamaModel, layerPrefix, makeConfig, presetConfig, ropeTables, applyRope } from '../src/index.js';
import { ids, maxAbsDiff, tinyConfig } from './helpers.js';
import type { LlamaConfig } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

const SCHEMES = ['pre', 'post', 'mix', 'lns', 'sandwich', 'deepnorm', 'layerscale', 'skipinit', 'pre+scaled', 'depth-scaled', 'lns+scaled', 'sandwich+lns'];

describe('rotary embedding', () => {
  it('matches a hand computation in the Hugging Face (halves) convention', () => {
    // d = 4, theta = 10000: inv_freq = [1, 1/100]; at position p the angles are [p, p/100, p, p/100].
    const { cos, sin } = ropeTables(4, 3, 10000);
    expect(Array.from(cos.slice(8, 12))).toEqual([Math.cos(2), Math.cos(0.02), Math.cos(2), Math.cos(0.02)].map(Math.fround));
    expect(Array.from(sin.slice(4, 8))).toEqual([Math.sin(1), Math.sin(0.01), Math.sin(1), Math.sin(0.01)].map(Math.fround));
    // q = [1, 2, 3, 4] at position 1: rotate_half(q) = [-3, -4, 1, 2].
    const got = tf.tidy(() =>
      applyRope(tf.tensor4d([1, 2, 3, 4], [1, 1, 1, 4]), tf.tensor2d(cos.slice(4, 8), [1, 4]), tf.tensor2d(sin.slice(4, 8), [1, 4])).dataSync(),
    );
    const c1 = Math.cos(1);
    const s1 = Math.sin(1);
    const c2 = Math.cos(0.01);
    const s2 = Math.sin(0.01);
    const want = [1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2];
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i] as number, 6));
  });
});

/** Family features on the tiny shape, so their gradients (biases, q/k norms, windows, scaled rotary) are checked too. */
const FAMILY_CASES: Array<[string, string, Partial<LlamaConfig>]> = [
  ['llama with biases and llama3 rope', 'lns', { attention_bias: true, mlp_bias: true, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 4 } }],
  ['qwen2 sliding', 'pre', { model_type: 'qwen2', use_sliding_window: true, sliding_window: 3, max_window_layers: 1 }],
  ['qwen3 with head_dim 8', 'lns', { model_type: 'qwen3', head_dim: 8 }],
];

describe('finite-difference gradient checks', () => {
  const cases: Array<[string, string, Partial<LlamaConfig>]> = [...SCHEMES.map((s): [string, string, Partial<LlamaConfig>] => [s, s, {}]), ...FAMILY_CASES];
  for (const [label, scheme, family] of cases) {
    it(`matches central differences for every parameter under '${label}'`, () => {
      const model = LlamaModel.create(tinyConfig(scheme, family), { seed: 3 });
      // Biases start at zero and q/k norms at one: move them, so the check sees them matter.
      const moved = Rng.fromSeed(`${label}-init`);
      for (const [name, v] of model.params) {
        if (name.endsWith('.bias') || name.endsWith('_norm.weight')) v.assign(tf.tensor(moved.fillNormal(new Float32Array(v.size), name.endsWith('.bias') ? 0 : 1, 0.3), v.shape));
      }
      // SkipInit starts with closed gates (zero gradient almost everywhere): open them so the check sees every path.
      for (const [name, v] of model.params) if (name.endsWith(BLOCK.attnGate) || name.endsWith(BLOCK.mlpGate)) v.assign(tf.fill(v.shape, 0.7));
      const input = ids([[1, 5, 9, 2, 7, 3], [4, 4, 8, 15, 0, 11]]);
      const lossValue = () => tf.tidy(() => model.loss(input).dataSync()[0] as number);
      const vars = model.trainableVariables();
      const { grads } = tf.variableGrads(() => model.loss(input), vars);
      const rng = Rng.fromSeed(scheme);
      const eps = 1e-2;
      for (const v of vars) {
        const name = [...model.params.entries()].find(([, x]) => x === v)![0];
        const direction = rng.fillNormal(new Float32Array(v.size));
        const norm = Math.hypot(...direction);
        direction.forEach((d, i) => (direction[i] = d / norm));
        const analytic = tf.tidy(() => tf.sum(tf.mul(grads[v.name]!, tf.tensor(direction, v.shape))).dataSync()[0] as number);
        const original = tf.clone(v);
        v.assign(tf.tidy(() => tf.add(original, tf.mul(tf.tensor(direction, v.shape), eps))));
        const plus = lossValue();
        v.assign(tf.tidy(() => tf.sub(original, tf.mul(tf.tensor(direction, v.shape), eps))));
        const minus = lossValue();
        v.assign(original);
        original.dispose();
        const numeric = (plus - minus) / (2 * eps);
        expect(Math.abs(numeric - analytic), `${scheme}: ${name} analytic ${analytic} numeric ${numeric}`).toBeLessThan(3e-4 + 2e-2 * Math.abs(analytic));
      }
      tf.dispose([input, ...Object.values(grads)]);
      model.dispose();
    });
  }
});

describe('initialisation by scheme', () => {
  const measuredStd = (t: tf.Tensor) => tf.tidy(() => Math.sqrt(tf.moments(t).variance.dataSync()[0] as number));
  const config = (norm: string) =>
    makeConfig({ vocab_size: 100, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 8, num_attention_heads: 4, deepen: { norm_scheme: norm } });
  const close = (got: number, want: number) => expect(Math.abs(got - want) / want).toBeLessThan(0.03);

  it('pre: every weight normal(0, 0.02), norms one', () => {
    const m = LlamaModel.create(config('pre'), { seed: 1 });
    for (const s of [BLOCK.q, BLOCK.o, BLOCK.up, BLOCK.down]) close(measuredStd(m.param(layerPrefix(5) + s)), 0.02);
    close(measuredStd(m.param('model.embed_tokens.weight')), 0.02);
    expect(Array.from(m.param(layerPrefix(0) + BLOCK.attnNorm).dataSync()).every((x) => x === 1)).toBe(true);
    m.dispose();
  });

  it('scaled: output projections 0.02 / sqrt(2L); depth-scaled: 0.02 / sqrt(2l)', () => {
    const scaled = LlamaModel.create(config('pre+scaled'), { seed: 1 });
    close(measuredStd(scaled.param(layerPrefix(2) + BLOCK.o)), 0.02 / 4);
    close(measuredStd(scaled.param(layerPrefix(7) + BLOCK.down)), 0.02 / 4);
    close(measuredStd(scaled.param(layerPrefix(7) + BLOCK.up)), 0.02);
    scaled.dispose();
    const depth = LlamaModel.create(config('depth-scaled'), { seed: 1 });
    for (const i of [0, 3, 7]) close(measuredStd(depth.param(layerPrefix(i) + BLOCK.o)), 0.02 / Math.sqrt(2 * (i + 1)));
    depth.dispose();
  });

  it('deepnorm: Xavier normal, beta-scaled for v, o and the MLP', () => {
    const m = LlamaModel.create(config('deepnorm'), { seed: 1 });
    const beta = deepNormBeta(8);
    close(measuredStd(m.param(layerPrefix(1) + BLOCK.q)), Math.sqrt(2 / 512));
    close(measuredStd(m.param(layerPrefix(1) + BLOCK.v)), beta * Math.sqrt(2 / 512));
    close(measuredStd(m.param(layerPrefix(1) + BLOCK.up)), beta * Math.sqrt(2 / 768));
    m.dispose();
  });

  it('layerscale and skipinit gates start at their init values', () => {
    const ls = LlamaModel.create(config('layerscale'), { seed: 1 });
    expect(Array.from(ls.param(layerPrefix(0) + BLOCK.attnGate).dataSync()).every((x) => Math.abs(x - 0.1) < 1e-7)).toBe(true);
    expect(ls.param(layerPrefix(0) + BLOCK.attnGate).shape).toEqual([256]);
    ls.dispose();
    const si = LlamaModel.create(config('skipinit'), { seed: 1 });
    expect(si.param(layerPrefix(3) + BLOCK.mlpGate).shape).toEqual([1]);
    expect(si.param(layerPrefix(3) + BLOCK.mlpGate).dataSync()[0]).toBe(0);
    si.dispose();
  });

  it('is reproducible from the seed', () => {
    const a = LlamaModel.create(tinyConfig('lns'), { seed: 'x' });
    const b = LlamaModel.create(tinyConfig('lns'), { seed: 'x' });
    const c = LlamaModel.create(tinyConfig('lns'), { seed: 'y' });
    expect(maxAbsDiff(a.param(layerPrefix(1) + BLOCK.k).dataSync(), b.param(layerPrefix(1) + BLOCK.k).dataSync())).toBe(0);
    expect(maxAbsDiff(a.param(layerPrefix(1) + BLOCK.k).dataSync(), c.param(layerPrefix(1) + BLOCK.k).dataSync())).toBeGreaterThan(0);
    [a, b, c].forEach((m) => m.dispose());
  });
});

describe('forward', () => {
  it('LNS scales block l by 1/sqrt(l): equal to Pre-LN with the factor in the norm weights', () => {
    const lns = LlamaModel.create(tinyConfig('lns'), { seed: 5 });
    const tensors = new Map([...lns.params].map(([n, v]) => [n, v as tf.Tensor]));
    const scaled = new Map(tensors);
    for (let i = 0; i < 3; i++) {
      for (const s of [BLOCK.attnNorm, BLOCK.mlpNorm]) scaled.set(layerPrefix(i) + s, tf.mul(tensors.get(layerPrefix(i) + s)!, lnsFactor(i + 1)));
    }
    const pre = LlamaModel.fromTensors(tinyConfig('pre'), scaled);
    const x = [[3, 1, 4, 1, 5, 9]];
    const a = lns.logits(x);
    const b = pre.logits(x);
    expect(maxAbsDiff(a.dataSync(), b.dataSync())).toBeLessThan(1e-5);
    expect(lns.plan(2).normScale).toBeCloseTo(1 / Math.sqrt(3), 12);
    tf.dispose([a, b]);
    [lns, pre].forEach((m) => m.dispose());
  });

  for (const scheme of ['pre', 'lns', 'sandwich']) {
    it(`skipping layer i equals a model built without layer i ('${scheme}')`, () => {
      const full = LlamaModel.create(tinyConfig(scheme, { num_hidden_layers: 4 }), { seed: 8 });
      const x = [[2, 7, 1, 8, 2, 8], [1, 4, 1, 4, 2, 1]];
      for (const removed of [0, 2, 3]) {
        const kept = [0, 1, 2, 3].filter((i) => i !== removed);
        const tensors = new Map<string, tf.Tensor>();
        for (const [name, v] of full.params) {
          const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
          if (!m) tensors.set(name, v);
          else if (Number(m[1]) !== removed) tensors.set(layerPrefix(kept.indexOf(Number(m[1]))) + m[2], v);
        }
        // The pruned model keeps each surviving layer's original depth for the scheme's constants.
        const smaller = LlamaModel.fromTensors(tinyConfig(scheme, { num_hidden_layers: 3, deepen: { norm_scheme: scheme, layer_depths: kept.map((i) => i + 1) } }), tensors);
        const a = full.logits(x, { skipLayers: [removed] });
        const b = smaller.logits(x);
        expect(maxAbsDiff(a.dataSync(), b.dataSync())).toBeLessThan(1e-5);
        tf.dispose([a, b]);
        smaller.dispose();
      }
      const all = full.logits(x);
      const skipped = full.logits(x, { skipLayers: [1] });
      expect(maxAbsDiff(all.dataSync(), skipped.dataSync())).toBeGreaterThan(1e-3);
      tf.dispose([all, skipped]);
      expect(() => full.logits(x, { skipLayers: [4] })).toThrow(/skipLayers has 4, outside 0..3/);
      full.dispose();
    });
  }

  it('captures each block input and output', () => {
    const model = LlamaModel.create(tinyConfig('lns'), { seed: 2 });
    const x = [[1, 2, 3, 4]];
    const { logits, hidden } = model.forward(x, { captureHidden: true });
    expect(hidden!.layers).toEqual([0, 1, 2]);
    const embedded = tf.tidy(() => tf.gather(model.param('model.embed_tokens.weight'), [1, 2, 3, 4]).dataSync());
    expect(maxAbsDiff(hidden!.inputs[0]!.dataSync(), embedded)).toBe(0);
    expect(maxAbsDiff(hidden!.outputs[0]!.dataSync(), hidden!.inputs[1]!.dataSync())).toBe(0);
    expect(hidden!.outputs[2]!.shape).toEqual([1, 4, 16]);
    const skipped = model.forward(x, { captureHidden: true, skipLayers: [1] });
    expect(skipped.hidden!.layers).toEqual([0, 2]);
    tf.dispose([logits, ...hidden!.inputs, ...hidden!.outputs, skipped.logits, ...skipped.hidden!.inputs, ...skipped.hidden!.outputs]);
    model.dispose();
  });

  it('is causal: changing a later token leaves earlier logits unchanged', () => {
    const model = LlamaModel.create(tinyConfig('mix'), { seed: 4 });
    const a = model.logits([[1, 2, 3, 4, 5]]);
    const b = model.logits([[1, 2, 3, 9, 9]]);
    const first = (t: tf.Tensor3D) => tf.tidy(() => tf.slice(t, [0, 0, 0], [1, 3, -1]).dataSync());
    expect(maxAbsDiff(first(a), first(b))).toBeLessThan(1e-6);
    expect(maxAbsDiff(a.dataSync(), b.dataSync())).toBeGreaterThan(1e-3);
    tf.dispose([a, b]);
    model.dispose();
  });

  it('keeps the live tensor count flat across repeated forwards and losses', () => {
    const model = LlamaModel.create(tinyConfig('sandwich+lns'), { seed: 1 });
    const input = ids([[1, 2, 3, 4, 5, 6]]);
    const watch = new TensorCountWatch('forward');
    for (let i = 0; i < 5; i++) {
      model.logits(input).dispose();
      model.loss(input).dispose();
      const { logits, hidden } = model.forward(input, { captureHidden: true });
      tf.dispose([logits, ...hidden!.inputs, ...hidden!.outputs]);
      watch.check(i);
    }
    input.dispose();
    model.dispose();
  });
});

describe('loss', () => {
  it('is the mean next-token cross-entropy over unmasked, non-ignored positions', () => {
    const model = LlamaModel.create(tinyConfig('pre'), { seed: 6 });
    const input = ids([[1, 2, 3, 4], [5, 6, 7, 8]]);
    const targets = ids([[2, 3, -100, 9], [6, 7, 8, 10]]);
    const mask = tf.tensor2d([[1, 1, 1, 1], [1, 0, 1, 1]]);
    const logits = model.logits(input).arraySync();
    const nll = (b: number, t: number, target: number) => {
      const row = logits[b]![t]!;
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
      return lse - row[target]!;
    };
    const counted: Array<[number, number, number]> = [[0, 0, 2], [0, 1, 3], [0, 3, 9], [1, 0, 6], [1, 2, 8], [1, 3, 10]];
    const want = counted.reduce((a, [b, t, y]) => a + nll(b, t, y), 0) / counted.length;
    const got = model.loss(input, { targets, mask });
    expect(got.dataSync()[0]).toBeCloseTo(want, 5);
    // Default targets: the inputs shifted left, the last position ignored.
    const shifted = [[0, 0, 2], [0, 1, 3], [0, 2, 4], [1, 0, 6], [1, 1, 7], [1, 2, 8]] as Array<[number, number, number]>;
    const next = model.loss(input);
    expect(next.dataSync()[0]).toBeCloseTo(shifted.reduce((a, [b, t, y]) => a + nll(b, t, y), 0) / 6, 5);
    expect(() => model.loss(input, { targets: ids([[1, 2]]) })).toThrow(/targets shape \[1,2\] differs from inputs \[2,4\]/);
    tf.dispose([input, targets, mask, got, next]);
    model.dispose();
  });

  it('starts near ln(vocab) for a fresh 9m-shaped model', () => {
    const model = LlamaModel.create(presetConfig('9m', { vocab_size: 512, num_hidden_layers: 2 }), { seed: 0 });
    const input = ids([Array.from({ length: 32 }, (_, i) => (i * 37) % 512)]);
    const loss = model.loss(input);
    expect(Math.abs((loss.dataSync()[0] as number) - Math.log(512))).toBeLessThan(0.1);
    tf.dispose([input, loss]);
    model.dispose();
  });
});

describe('model lifetime', () => {
  it('creating, loading and disposing a model leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    const model = LlamaModel.create(tinyConfig('lns+layerscale'), { seed: 1 });
    expect(tf.memory().numTensors - before).toBe(model.params.size + 2); // the variables and the two rotary tables
    tf.dispose(model.logits([[1, 2, 3]]));
    expect(tf.memory().numTensors - before).toBe(model.params.size + 2); // a forward adds none
    const copy = LlamaModel.fromTensors(model.config, new Map([...model.params].map(([n, v]) => [n, v as tf.Tensor])));
    copy.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
