/**
 * The fused kernels against independent references: hand-computed values, the same function
 * written with plain tf.* ops on the pure-JS cpu engine (forward and autodiff gradients), and
 * central finite differences of the fused backward passes themselves.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { fusedAdam, fusedAttention, fusedCrossEntropy, fusedRmsNorm, fusedRope, fusedSwiGlu, hasFused } from '../src/fused/index.js';
import { Rng } from '@deepen/core';
import { expectClose, nativeLoad, skipNative, skipReason, startNativeAndCpu } from './native-support.js';

const rng = Rng.fromSeed(7);
const normals = (n: number, scale = 1) => rng.fillNormal(new Float32Array(n), 0, scale);

/** Runs `work` on the native engine (fused) and its composite twin on the cpu engine. */
async function fusedVersusComposite<T>(fused: () => T, composite: () => T): Promise<{ fused: T; composite: T }> {
  await tf.setBackend('deepen-native');
  const a = fused();
  await tf.setBackend('cpu');
  const b = composite();
  await tf.setBackend('deepen-native');
  return { fused: a, composite: b };
}

/**
 * Central finite differences of sum(f(x) * w) with respect to x at a few coordinates, in
 * float32 on the native engine, against the fused backward pass.
 */
function finiteDifferenceCheck(label: string, x: Float32Array, shape: number[], f: (t: tf.Tensor) => tf.Tensor, coordinates: number[], h = 1e-2, tolerance = 2e-2): void {
  const weights = tf.tidy(() => tf.keep(tf.tensor(normals(tf.util.sizeFromShape(f(tf.tensor(x, shape)).shape)), f(tf.tensor(x, shape)).shape)));
  const objective = (t: tf.Tensor) => tf.sum(tf.mul(f(t), weights));
  const grad = tf.tidy(() => tf.grad(objective)(tf.tensor(x, shape)).dataSync());
  for (const i of coordinates) {
    const plus = Float32Array.from(x);
    const minus = Float32Array.from(x);
    plus[i] = (plus[i] as number) + h;
    minus[i] = (minus[i] as number) - h;
    const numeric = tf.tidy(() => ((objective(tf.tensor(plus, shape)).dataSync()[0] as number) - (objective(tf.tensor(minus, shape)).dataSync()[0] as number)) / (2 * h));
    const analytic = grad[i] as number;
    expect(Math.abs(numeric - analytic), `${label}: d/dx[${i}] analytic ${analytic}, numeric ${numeric}`).toBeLessThan(tolerance * Math.max(1, Math.abs(numeric)));
  }
  weights.dispose();
}

describe.skipIf(skipNative)(`fused kernels on the native engine${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(startNativeAndCpu);

  it('are offered by the native engine only, and DEEPEN_FUSED=0 turns them off', async () => {
    await tf.setBackend('deepen-native');
    expect(hasFused('attention')).toBe(true);
    process.env.DEEPEN_FUSED = '0';
    expect(hasFused('attention')).toBe(false);
    delete process.env.DEEPEN_FUSED;
    await tf.setBackend('cpu');
    expect(hasFused('crossEntropy')).toBe(false);
    await tf.setBackend('deepen-native');
  });

  it('cross-entropy: hand-computed values, ignored rows, and out-of-vocabulary targets', async () => {
    await tf.setBackend('deepen-native');
    const [loss, grad] = tf.tidy(() => {
      const logits = tf.tensor2d([[0, 0, Math.log(2)], [1, 2, 3]]);
      const targets = tf.tensor1d([2, -100], 'int32');
      const g = tf.grad((l: tf.Tensor) => tf.sum(fusedCrossEntropy(l as tf.Tensor2D, targets, -100)))(logits);
      return [Array.from(fusedCrossEntropy(logits, targets, -100).dataSync()), Array.from(g.dataSync())];
    });
    // Row 0: softmax = [1/4, 1/4, 1/2], loss = -log(1/2); row 1 is ignored.
    expectClose(loss!, [Math.log(2), 0], 'loss', 1e-6, 1e-7);
    expectClose(grad!, [0.25, 0.25, -0.5, 0, 0, 0], 'grad', 1e-6, 1e-7);
    expect(() => tf.tidy(() => fusedCrossEntropy(tf.zeros([2, 3]) as tf.Tensor2D, tf.tensor1d([1, 3], 'int32'), -100))).toThrow(
      /target 3 at row 1 is outside the vocabulary \[0, 3\)/,
    );
  });

  it('cross-entropy matches log-softmax + gather on the cpu engine, forward and backward', async () => {
    const [N, V] = [37, 1003];
    const logits = normals(N * V, 3);
    const targets = Int32Array.from({ length: N }, (_, i) => (i % 5 === 0 ? -100 : rng.int(V)));
    const weights = normals(N);
    const run = (fused: boolean) => () =>
      tf.tidy(() => {
        const t = tf.tensor1d(targets, 'int32');
        const f = (l: tf.Tensor) => {
          const per = fused
            ? fusedCrossEntropy(l as tf.Tensor2D, t, -100)
            : tf.mul(tf.neg(tf.sum(tf.mul(tf.logSoftmax(l), tf.oneHot(tf.maximum(t, tf.scalar(0, 'int32')), V)), -1)), tf.cast(tf.notEqual(t, -100), 'float32'));
          return tf.sum(tf.mul(per, tf.tensor1d(weights)));
        };
        const { value, grad } = tf.valueAndGrad(f)(tf.tensor2d(logits, [N, V]));
        return [value.dataSync()[0] as number, Array.from(grad.dataSync())] as const;
      });
    const { fused, composite } = await fusedVersusComposite(run(true), run(false));
    expect(fused[0]).toBeCloseTo(composite[0], 3);
    expectClose(fused[1], composite[1], 'dlogits', 1e-4, 1e-7);
  });

  it('RMSNorm matches the tf.* formula, forward and both gradients, and passes a finite-difference check', async () => {
    const shape = [3, 5, 48];
    const x = normals(3 * 5 * 48, 2);
    const w = normals(48);
    const up = normals(3 * 5 * 48);
    const run = (fused: boolean) => () =>
      tf.tidy(() => {
        const f = (xx: tf.Tensor, ww: tf.Tensor) => {
          const y = fused ? fusedRmsNorm(xx, ww, 1e-6) : tf.mul(tf.mul(xx, tf.rsqrt(tf.add(tf.mean(tf.square(xx), -1, true), 1e-6))), ww);
          return tf.sum(tf.mul(y, tf.tensor(up, shape)));
        };
        const [gx, gw] = tf.grads(f)([tf.tensor(x, shape), tf.tensor1d(w)]);
        const y = fused ? fusedRmsNorm(tf.tensor(x, shape), tf.tensor1d(w), 1e-6) : tf.mul(tf.mul(tf.tensor(x, shape), tf.rsqrt(tf.add(tf.mean(tf.square(tf.tensor(x, shape)), -1, true), 1e-6))), tf.tensor1d(w));
        return [Array.from(y.dataSync()), Array.from(gx!.dataSync()), Array.from(gw!.dataSync())];
      });
    const { fused, composite } = await fusedVersusComposite(run(true), run(false));
    ['y', 'dx', 'dw'].forEach((name, i) => expectClose(fused[i]!, composite[i]!, name, 1e-4, 1e-5));
    const wt = tf.tensor1d(w);
    finiteDifferenceCheck('rmsNorm', x.slice(0, 2 * 48), [2, 48], (t) => fusedRmsNorm(t, wt, 1e-6), [0, 7, 50, 95]);
    wt.dispose();
  });

  it('SwiGLU and rotary embedding match their tf.* formulas, forward and backward', async () => {
    const gate = normals(4 * 33, 3);
    const up = normals(4 * 33);
    const [B, H, T, D] = [2, 3, 5, 8];
    const x = normals(B * H * T * D);
    const cos = normals(T * D);
    const sin = normals(T * D);
    const weights = normals(B * H * T * D);
    const rotateHalf = (t: tf.Tensor) => {
      const [a, b] = tf.split(t, 2, -1) as [tf.Tensor, tf.Tensor];
      return tf.concat([tf.neg(b), a], -1);
    };
    const run = (fused: boolean) => () =>
      tf.tidy(() => {
        const swi = (g: tf.Tensor, u: tf.Tensor) => (fused ? fusedSwiGlu(g, u) : tf.mul(tf.mul(g, tf.sigmoid(g)), u));
        const [dg, du] = tf.grads((g: tf.Tensor, u: tf.Tensor) => tf.sum(tf.mul(swi(g, u), tf.range(0, 132).reshape([4, 33]))))([tf.tensor2d(gate, [4, 33]), tf.tensor2d(up, [4, 33])]);
        const c = tf.tensor2d(cos, [T, D]);
        const s = tf.tensor2d(sin, [T, D]);
        const rope = (t: tf.Tensor) => (fused ? fusedRope(t, c, s) : tf.add(tf.mul(t, c), tf.mul(rotateHalf(t), s)));
        const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(rope(t), tf.tensor(weights, [B, H, T, D]))))(tf.tensor4d(x, [B, H, T, D]));
        return [swi(tf.tensor2d(gate, [4, 33]), tf.tensor2d(up, [4, 33])), dg!, du!, rope(tf.tensor4d(x, [B, H, T, D])), dx].map((t) => Array.from(t.dataSync()));
      });
    const { fused, composite } = await fusedVersusComposite(run(true), run(false));
    ['swiglu', 'dgate', 'dup', 'rope', 'drope'].forEach((name, i) => expectClose(fused[i]!, composite[i]!, name, 1e-5, 1e-6));
    finiteDifferenceCheck('swiGlu', gate.slice(0, 33), [33], (t) => fusedSwiGlu(t, tf.tensor1d(up.slice(0, 33))), [0, 5, 32]);
  });

  it('causal attention with grouped kv heads and a cache offset matches softmax(QK^T)V, forward and backward', async () => {
    for (const [B, nH, nKV, T, S, hd] of [
      [2, 4, 4, 7, 7, 8],
      [1, 6, 2, 5, 9, 4],
      [1, 2, 1, 1, 6, 16],
    ] as const) {
      const q = normals(B * nH * T * hd);
      const k = normals(B * nKV * S * hd);
      const v = normals(B * nKV * S * hd);
      const weights = normals(B * nH * T * hd);
      const offset = S - T;
      const scale = 1 / Math.sqrt(hd);
      const reference = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => {
        // Repeat kv heads (HF repeat_kv: query head h reads kv head h / rep) and mask the future.
        const rep = nH / nKV;
        const expand = (t: tf.Tensor) => tf.gather(t, tf.tensor1d(Int32Array.from({ length: nH }, (_, h) => Math.floor(h / rep)), 'int32'), 1);
        const mask = tf.tensor2d(Float32Array.from({ length: T * S }, (_, i) => (i % S > offset + Math.floor(i / S) ? -1e9 : 0)), [T, S]);
        const scores = tf.add(tf.mul(tf.matMul(qq, expand(kk), false, true), scale), mask);
        return tf.matMul(tf.softmax(scores), expand(vv));
      };
      const run = (fused: boolean) => () =>
        tf.tidy(() => {
          const f = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) =>
            fused ? fusedAttention(qq as tf.Tensor4D, kk as tf.Tensor4D, vv as tf.Tensor4D, { scale, offset }) : reference(qq, kk, vv);
          const inputs = [tf.tensor4d(q, [B, nH, T, hd]), tf.tensor4d(k, [B, nKV, S, hd]), tf.tensor4d(v, [B, nKV, S, hd])] as const;
          const grads = tf.grads((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.mul(f(qq, kk, vv), tf.tensor4d(weights, [B, nH, T, hd]))))([...inputs]);
          return [f(...inputs), ...grads].map((t) => Array.from(t.dataSync()));
        });
      const { fused, composite } = await fusedVersusComposite(run(true), run(false));
      ['out', 'dq', 'dk', 'dv'].forEach((name, i) => expectClose(fused[i]!, composite[i]!, `${name} (B${B} nH${nH} nKV${nKV} T${T} S${S})`, 1e-4, 1e-5));
    }
    await tf.setBackend('deepen-native');
    expect(() => tf.tidy(() => fusedAttention(tf.zeros([1, 3, 2, 4]) as tf.Tensor4D, tf.zeros([1, 2, 2, 4]) as tf.Tensor4D, tf.zeros([1, 2, 2, 4]) as tf.Tensor4D, { scale: 1, offset: 0 }))).toThrow(
      /nKV dividing nH/,
    );
  });

  it('Adam and AdamW: one fused step equals the textbook update', async () => {
    await tf.setBackend('deepen-native');
    const p = normals(50);
    const g = normals(50);
    const m = normals(50, 0.1);
    const v = Float32Array.from(normals(50, 0.1), Math.abs);
    for (const decoupled of [false, true]) {
      const step = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, correction1: 1 - 0.9 ** 3, correction2: 1 - 0.999 ** 3, decay: 0.1, decoupled };
      const [p1, m1, v1] = tf.tidy(() => fusedAdam(tf.tensor1d(p), tf.tensor1d(g), tf.tensor1d(m), tf.tensor1d(v), step).map((t) => Array.from(t.dataSync())));
      const expected = Array.from(p, (pi, i) => {
        const gi = (g[i] as number) + (decoupled ? 0 : 0.1 * pi);
        const mi = 0.9 * (m[i] as number) + 0.1 * gi;
        const vi = 0.999 * (v[i] as number) + 0.001 * gi * gi;
        const update = mi / step.correction1 / (Math.sqrt(vi / step.correction2) + 1e-8) + (decoupled ? 0.1 * pi : 0);
        return [pi - 0.01 * update, mi, vi];
      });
      expectClose(p1!, expected.map((e) => e[0]!), `param (decoupled=${decoupled})`, 1e-5, 1e-7);
      // The moments are differences of terms near 0.1: float32 rounding of those terms, not of
      // the result, sets the tolerance.
      expectClose(m1!, expected.map((e) => e[1]!), 'm', 1e-5, 1e-7);
      expectClose(v1!, expected.map((e) => e[2]!), 'v', 1e-5, 1e-7);
    }
  });

  it('give identical results on one thread and on several (inputs large enough to be split)', async () => {
    if (!nativeLoad.ok) return;
    await tf.setBackend('deepen-native');
    const [N, V] = [300, 1000];
    const logits = normals(N * V, 2);
    const targets = Int32Array.from({ length: N }, () => rng.int(V));
    const x = normals(2800 * 48);
    const w = normals(48);
    const big = normals(140_000);
    const big2 = normals(140_000);
    const rope = normals(64 * 16 * 32);
    const tables = normals(16 * 32);
    const everything = () =>
      tf.tidy(() => {
        const ce = tf.valueAndGrad((l: tf.Tensor) => tf.sum(fusedCrossEntropy(l as tf.Tensor2D, tf.tensor1d(targets, 'int32'), -100)))(tf.tensor2d(logits, [N, V]));
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(fusedRmsNorm(a, b, 1e-6))))([tf.tensor2d(x, [2800, 48]), tf.tensor1d(w)]);
        const [dg, du] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(fusedSwiGlu(a, b))))([tf.tensor1d(big), tf.tensor1d(big2)]);
        const table = tf.tensor2d(tables, [16, 32]);
        const r = fusedRope(tf.tensor3d(rope, [64, 16, 32]), table, table);
        const adam = fusedAdam(tf.tensor1d(big), tf.tensor1d(big2), tf.tensor1d(big2), tf.tensor1d(big.map(Math.abs)), {
          lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, correction1: 0.1, correction2: 0.01, decay: 0, decoupled: false,
        });
        return [ce.value, ce.grad, dx!, dw!, dg!, du!, r, tf.softmax(tf.tensor2d(logits, [N, V])), tf.exp(tf.tensor1d(big)), ...adam].map((t) => Array.from(t.dataSync()));
      });
    const threads = nativeLoad.binding.blasInfo().threads;
    try {
      nativeLoad.binding.setThreads(1);
      const one = everything();
      nativeLoad.binding.setThreads(2);
      const two = everything();
      one.forEach((values, i) => {
        // The weight gradient of RMSNorm sums per-thread partial sums: equal up to rounding.
        if (i === 3) expectClose(two[i]!, values, 'rmsNorm dw', 1e-5, 1e-5);
        else expect(two[i], `output ${i}`).toEqual(values);
      });
    } finally {
      nativeLoad.binding.setThreads(threads);
    }
  });

  it('keep the live tensor count flat through forward and backward passes', async () => {
    await tf.setBackend('deepen-native');
    const x = tf.tensor3d(normals(2 * 3 * 16), [2, 3, 16]);
    const w = tf.ones([16]);
    const step = () =>
      tf.tidy(() => {
        const f = (xx: tf.Tensor) => tf.sum(fusedSwiGlu(fusedRmsNorm(xx, w, 1e-6), xx));
        tf.grad(f)(x).dataSync();
      });
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w]);
  });
});
