/**
 * The ops on an engine without fused kernels (the pure-JS cpu engine): each runs its composite,
 * so op and composite agree exactly, forward and backward; the composites themselves against
 * independent references (repeat_kv attention with an explicit mask, log-softmax cross-entropy,
 * loop formulas, the textbook Adam update); errors; and a flat tensor count.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { hasFused, type FusedOp } from '../src/fused/index.js';
import { initBackend } from '../src/init.js';
import { TensorCountWatch, assertNoLeaks } from '../src/leaks.js';
import * as composite from '../src/ops/composite.js';
import * as ops from '../src/ops/index.js';
import { Rng } from '@deepen/core';
import { expectClose } from './native-support.js';
import { OP_CASES } from './op-cases.js';

const rng = Rng.fromSeed(11);
const normals = (n: number, scale = 1) => rng.fillNormal(new Float32Array(n), 0, scale);

/** Values and gradients (of sum(f * weights)) of `f` at `inputs`, as plain arrays. */
function valuesAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], weights: tf.Tensor): number[][] {
  return tf.tidy(() => {
    const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), weights)))(inputs);
    return [f(...inputs), ...grads].map((t) => Array.from(t.dataSync()));
  });
}

describe('the ops on the cpu engine (no fused kernels)', () => {
  beforeAll(async () => {
    await initBackend({ engine: 'cpu' });
  });

  it('find no fused kernel there', () => {
    for (const op of ['crossEntropy', 'rmsNorm', 'swiGlu', 'rope', 'attention', 'adam'] as FusedOp[]) expect(hasFused(op), op).toBe(false);
  });

  for (const c of OP_CASES) {
    it(`${c.label}: the op is its composite, forward and backward, and leaks nothing`, () => {
      const viaOp = c.run(ops);
      const viaComposite = c.run(composite);
      expect(viaOp.length).toBe(c.names.length);
      c.names.forEach((name, i) => expect(viaOp[i], name).toEqual(viaComposite[i]));
    });
  }

  it('causal attention: the grouped composite equals repeat_kv attention with an explicit mask, forward and backward', () => {
    for (const [B, nH, nKV, T, S, hd] of [
      [2, 4, 4, 7, 7, 8],
      [2, 4, 2, 5, 5, 8],
      [1, 4, 1, 6, 6, 4],
      [1, 4, 2, 5, 9, 4],
      [2, 4, 1, 3, 8, 16],
      [1, 4, 2, 1, 6, 8],
    ] as const) {
      const offset = S - T;
      const scale = 1 / Math.sqrt(hd);
      // HF repeat_kv: query head h reads kv head floor(h / rep); key s is visible to query t iff s <= offset + t.
      const reference = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => {
        const rep = nH / nKV;
        const expand = (t: tf.Tensor) => tf.gather(t, tf.tensor1d(Int32Array.from({ length: nH }, (_, h) => Math.floor(h / rep)), 'int32'), 1);
        const mask = tf.tensor2d(Float32Array.from({ length: T * S }, (_, i) => (i % S > offset + Math.floor(i / S) ? -1e9 : 0)), [T, S]);
        return tf.matMul(tf.softmax(tf.add(tf.mul(tf.matMul(q, expand(k), false, true), scale), mask)), expand(v));
      };
      const inputs = [tf.tensor4d(normals(B * nH * T * hd), [B, nH, T, hd]), tf.tensor4d(normals(B * nKV * S * hd), [B, nKV, S, hd]), tf.tensor4d(normals(B * nKV * S * hd), [B, nKV, S, hd])];
      const weights = tf.tensor4d(normals(B * nH * T * hd), [B, nH, T, hd]);
      const grouped = valuesAndGrads((q, k, v) => composite.causalAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, { scale, offset }), inputs, weights);
      const repeated = valuesAndGrads(reference, inputs, weights);
      ['out', 'dq', 'dk', 'dv'].forEach((name, i) => expectClose(grouped[i]!, repeated[i]!, `${name} (B${B} nH${nH} nKV${nKV} T${T} S${S})`, 1e-5, 1e-6));
      // The op's default offset is S - T: the queries are the last T positions.
      const defaulted = tf.tidy(() => Array.from(ops.causalAttention(inputs[0] as tf.Tensor4D, inputs[1] as tf.Tensor4D, inputs[2] as tf.Tensor4D, { scale }).dataSync()));
      expect(defaulted).toEqual(grouped[0]);
      tf.dispose([...inputs, weights]);
    }
  });

  it('causal attention: the mask repeats its rows per grouped head, and bad shapes fail on every path', () => {
    const mask = composite.causalMask(2, 1, 2);
    expect(mask.shape).toEqual([4, 3]);
    expect(Array.from(mask.dataSync())).toEqual([0, 0, -1e9, 0, 0, 0, 0, 0, -1e9, 0, 0, 0].map(Math.fround));
    mask.dispose();
    const z = (...shape: [number, number, number, number]) => tf.zeros(shape) as tf.Tensor4D;
    expect(() => tf.tidy(() => ops.causalAttention(z(1, 3, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), { scale: 1 }))).toThrow(/nKV dividing nH/);
    expect(() => tf.tidy(() => ops.causalAttention(z(1, 2, 3, 4), z(1, 2, 4, 4), z(1, 2, 4, 4), { scale: 1, offset: 2 }))).toThrow(/offset 2 .*offset \+ T <= S/);
    expect(() => tf.tidy(() => ops.causalAttention(z(1, 2, 3, 4), z(1, 2, 4, 4), z(1, 2, 4, 8), { scale: 1 }))).toThrow(/do not fit/);
  });

  it('cross-entropy: the composite equals -log_softmax at the target, 0 (and no gradient) on ignored rows', () => {
    const [N, V] = [23, 97];
    const logits = tf.tensor2d(normals(N * V, 3), [N, V]);
    const ids = Int32Array.from({ length: N }, (_, i) => (i % 4 === 1 ? -100 : rng.int(V)));
    const targets = tf.tensor1d(ids, 'int32');
    const weights = tf.tensor1d(normals(N));
    const reference = (l: tf.Tensor) =>
      tf.mul(tf.neg(tf.sum(tf.mul(tf.logSoftmax(l), tf.oneHot(tf.maximum(targets, tf.scalar(0, 'int32')), V)), -1)), tf.cast(tf.notEqual(targets, -100), 'float32'));
    const [loss, dlogits] = valuesAndGrads((l) => ops.crossEntropy(l as tf.Tensor2D, targets, -100), [logits], weights);
    const [refLoss, refGrad] = valuesAndGrads(reference, [logits], weights);
    expectClose(loss!, refLoss!, 'loss', 1e-5, 1e-5);
    expectClose(dlogits!, refGrad!, 'dlogits', 1e-4, 1e-6);
    ids.forEach((t, row) => {
      if (t !== -100) return;
      expect(loss![row], `row ${row}`).toBe(0);
      expect(dlogits!.slice(row * V, (row + 1) * V).every((g) => g === 0), `gradient of row ${row}`).toBe(true);
    });
    // Float targets (ids held as float32) give the same losses.
    const floatTargets = tf.cast(targets, 'float32') as tf.Tensor1D;
    expect(tf.tidy(() => Array.from(ops.crossEntropy(logits, floatTargets, -100).dataSync()))).toEqual(loss);
    tf.dispose([logits, targets, weights, floatTargets]);
  });

  it('RMSNorm, SwiGLU and rotary: the composites equal their loop formulas', () => {
    const [rows, H] = [3, 8];
    const x = normals(rows * H, 2);
    const w = normals(H);
    const y = tf.tidy(() => ops.rmsNorm(tf.tensor2d(x, [rows, H]), tf.tensor1d(w), 1e-6).dataSync());
    const expected = Array.from(x, (xi, i) => {
      const row = Math.floor(i / H);
      const ms = x.slice(row * H, (row + 1) * H).reduce((a, b) => a + b * b, 0) / H;
      return (xi / Math.sqrt(ms + 1e-6)) * (w[i % H] as number);
    });
    expectClose(y, expected, 'rmsNorm', 1e-5, 1e-6);
    // Non-float32 inputs are cast to float32 first.
    const ints = tf.tidy(() => ops.rmsNorm(tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32'), tf.ones([4]), 1e-6));
    expect(ints.dtype).toBe('float32');
    expectClose(ints.dataSync(), [1, 2, 3, 4].map((v) => v / Math.sqrt(7.5 + 1e-6)), 'rmsNorm of int32', 1e-6, 1e-7);
    ints.dispose();

    const g = normals(20, 3);
    const u = normals(20);
    const h = tf.tidy(() => ops.swiGlu(tf.tensor1d(g), tf.tensor1d(u)).dataSync());
    expectClose(h, Array.from(g, (gi, i) => (gi / (1 + Math.exp(-gi))) * (u[i] as number)), 'swiGlu', 1e-5, 1e-6);

    const [T, D] = [3, 6];
    const xr = normals(2 * T * D);
    const cos = normals(T * D);
    const sin = normals(T * D);
    const r = tf.tidy(() => ops.applyRope(tf.tensor3d(xr, [2, T, D]), tf.tensor2d(cos, [T, D]), tf.tensor2d(sin, [T, D])).dataSync());
    const half = D / 2;
    const rotated = Array.from(xr, (xi, i) => {
      const d = i % D;
      const base = i - d;
      const partner = d < half ? -(xr[base + d + half] as number) : (xr[base + d - half] as number);
      const td = (Math.floor(i / D) % T) * D + d;
      return xi * (cos[td] as number) + partner * (sin[td] as number);
    });
    expectClose(r, rotated, 'applyRope', 1e-5, 1e-6);
  });

  it('Adam and AdamW: the composite step equals the textbook update', () => {
    const [p, g, m] = [normals(40), normals(40), normals(40, 0.1)];
    const v = Float32Array.from(normals(40, 0.1), Math.abs);
    for (const decoupled of [false, true]) {
      const step = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, correction1: 1 - 0.9 ** 3, correction2: 1 - 0.999 ** 3, decay: 0.1, decoupled };
      const [p1, m1, v1] = tf.tidy(() => ops.adamUpdate(tf.tensor1d(p), tf.tensor1d(g), tf.tensor1d(m), tf.tensor1d(v), step).map((t) => Array.from(t.dataSync())));
      const expected = Array.from(p, (pi, i) => {
        const gi = (g[i] as number) + (decoupled ? 0 : 0.1 * pi);
        const mi = 0.9 * (m[i] as number) + 0.1 * gi;
        const vi = 0.999 * (v[i] as number) + 0.001 * gi * gi;
        const update = mi / step.correction1 / (Math.sqrt(vi / step.correction2) + 1e-8) + (decoupled ? 0.1 * pi : 0);
        return [pi - 0.01 * update, mi, vi];
      });
      expectClose(p1!, expected.map((e) => e[0]!), `param (decoupled=${decoupled})`, 1e-5, 1e-7);
      expectClose(m1!, expected.map((e) => e[1]!), 'm', 1e-5, 1e-7);
      expectClose(v1!, expected.map((e) => e[2]!), 'v', 1e-5, 1e-7);
    }
  });

  it('keep the live tensor count flat through repeated forward and backward passes', () => {
    const watch = new TensorCountWatch('ops on cpu');
    const x = tf.tensor4d(normals(2 * 4 * 3 * 8), [2, 4, 3, 8]);
    const kv = tf.tensor4d(normals(2 * 2 * 5 * 8), [2, 2, 5, 8]);
    const table = tf.tensor2d(normals(3 * 8), [3, 8]);
    const w = tf.ones([8]);
    const targets = tf.tensor1d([1, -100, 3, 7, 0, 2], 'int32');
    for (let i = 0; i < 4; i++) {
      tf.tidy(() => {
        const f = (q: tf.Tensor, k: tf.Tensor) => {
          const h = ops.swiGlu(ops.rmsNorm(ops.applyRope(q, table, table), w, 1e-6), q) as tf.Tensor4D;
          const out = ops.causalAttention(h, k as tf.Tensor4D, k as tf.Tensor4D, { scale: 0.3, offset: 2 });
          return tf.sum(ops.crossEntropy(tf.reshape(out, [-1, 8]).slice([0, 0], [6, 8]) as tf.Tensor2D, targets, -100));
        };
        tf.grads(f)([x, kv]).forEach((t) => t.dataSync());
      });
      watch.check(i);
    }
    assertNoLeaks('adamUpdate', () => tf.dispose(ops.adamUpdate(w, w, w, w, { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, correction1: 0.1, correction2: 0.01, decay: 0.1, decoupled: true })));
    tf.dispose([x, kv, table, w, targets]);
  });
});
