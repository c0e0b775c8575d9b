/**
 * The ops with their fused kernels (the native engine) against independent references: their
 * composites (the exported tf.* code) on the pure-JS cpu engine, forward and tf.grads
 * gradients, on every case of op-cases.ts (GQA, KV-cache offsets, ignored rows, AdamW decay);
 * hand-computed values; central finite differences of the fused backward passes; the same
 * results on one thread and several; and a flat tensor count.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@deepen/core';
import { FUSED_KERNELS, fusedAttention, hasFused, type FusedOp } from '../src/fused/index.js';
import { TensorCountWatch } from '../src/leaks.js';
import * as composite from '../src/ops/composite.js';
import { adamUpdate, applyRope, causalAttention, crossEntropy, rmsNorm, swiGlu } from '../src/ops/index.js';
import * as ops from '../src/ops/index.js';
import { profileKernels } from '../src/profile.js';
import { expectClose, nativeLoad, skipNative, skipReason, startNativeAndCpu } from './native-support.js';
import { OP_CASES } from './op-cases.js';

const rng = Rng.fromSeed(7);
const normals = (n: number, scale = 1) => rng.fillNormal(new Float32Array(n), 0, scale);

/** Runs `work` on the native engine, then `reference` on the cpu engine. */
async function nativeVersusCpu<T>(work: () => T, reference: () => T): Promise<{ native: T; cpu: T }> {
  await tf.setBackend('deepen-native');
  const native = work();
  await tf.setBackend('cpu');
  const cpu = reference();
  await tf.setBackend('deepen-native');
  return { native, cpu };
}

/** Runs `work` with DEEPEN_FUSED=0. */
function unfused<T>(work: () => T): T {
  process.env.DEEPEN_FUSED = '0';
  try {
    return work();
  } finally {
    delete process.env.DEEPEN_FUSED;
  }
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

describe.skipIf(skipNative)(`the ops with fused kernels on the native engine${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(startNativeAndCpu);

  it('find their kernels on the native engine only, and DEEPEN_FUSED=0 turns them off', async () => {
    const all: FusedOp[] = ['crossEntropy', 'rmsNorm', 'swiGlu', 'rope', 'attention', 'adam'];
    await tf.setBackend('deepen-native');
    for (const op of all) expect(hasFused(op), op).toBe(true);
    unfused(() => all.forEach((op) => expect(hasFused(op), `${op} with DEEPEN_FUSED=0`).toBe(false)));
    await tf.setBackend('cpu');
    for (const op of all) expect(hasFused(op), `${op} on cpu`).toBe(false);
    await tf.setBackend('deepen-native');
  });

  it('run the fused kernel, one per call, where the engine has it, and the composite under DEEPEN_FUSED=0', async () => {
    await tf.setBackend('deepen-native');
    const x = tf.tensor3d(normals(2 * 3 * 8), [2, 3, 8]);
    const table = tf.tensor2d(normals(3 * 8), [3, 8]);
    const w = tf.ones([8]);
    const targets = tf.tensor1d([1, -100, 3, 7, 0, 2], 'int32');
    const work = () =>
      tf.tidy(() => {
        const q = applyRope(tf.reshape(rmsNorm(x, w, 1e-6), [1, 2, 3, 8]), table, table) as tf.Tensor4D;
        const out = swiGlu(causalAttention(q, q, q, { scale: 0.3, offset: 0 }), q);
        tf.sum(crossEntropy(tf.reshape(out, [6, 8]) as tf.Tensor2D, targets, -100)).dataSync();
        tf.dispose(adamUpdate(w, w, w, w, { lr: 1, beta1: 0.9, beta2: 0.99, eps: 1e-8, correction1: 0.1, correction2: 0.01, decay: 0, decoupled: false }));
      });
    const names = (p: { kernels: Array<{ kernel: string; calls: number }> }) => new Map(p.kernels.map((k) => [k.kernel, k.calls]));
    const fusedRun = names(await profileKernels(work));
    for (const kernel of [FUSED_KERNELS.rmsNorm, FUSED_KERNELS.rope, FUSED_KERNELS.attention, FUSED_KERNELS.swiGlu, FUSED_KERNELS.crossEntropy, FUSED_KERNELS.adam]) {
      expect(fusedRun.get(kernel), kernel).toBe(1);
    }
    expect(fusedRun.has('Softmax'), 'no softmax outside the attention kernel').toBe(false);
    const compositeRun = names(await profileKernels(() => unfused(work)));
    expect([...compositeRun.keys()].filter((k) => k.startsWith('Deepen'))).toEqual([]);
    expect(compositeRun.get('Softmax')).toBe(1);
    tf.dispose([x, table, w, targets]);
  });

  for (const c of OP_CASES) {
    it(`${c.label}: fused on the native engine agrees with the composite on the cpu engine, forward and backward`, async () => {
      const { native, cpu } = await nativeVersusCpu(
        () => c.run(ops),
        () => c.run(composite),
      );
      c.names.forEach((name, i) => expectClose(native[i]!, cpu[i]!, `${c.label}: ${name}`, ...c.tolerance));
      // With the fused kernels turned off, the op is its composite on this engine too.
      const viaOp = unfused(() => c.run(ops));
      const viaComposite = c.run(composite);
      c.names.forEach((name, i) => expect(viaOp[i], `${name} with DEEPEN_FUSED=0`).toEqual(viaComposite[i]));
    });
  }

  it('cross-entropy: hand-computed values, ignored rows, and out-of-vocabulary targets', async () => {
    await tf.setBackend('deepen-native');
    const [loss, grad] = tf.tidy(() => {
      const logits = tf.tensor2d([[0, 0, Math.log(2)], [1, 2, 3]]);
      const targets = tf.tensor1d([2, -100], 'int32');
      const g = tf.grad((l: tf.Tensor) => tf.sum(crossEntropy(l as tf.Tensor2D, targets, -100)))(logits);
      return [Array.from(crossEntropy(logits, targets, -100).dataSync()), Array.from(g.dataSync())];
    });
    // Row 0: softmax = [1/4, 1/4, 1/2], loss = -log(1/2); row 1 is ignored.
    expectClose(loss!, [Math.log(2), 0], 'loss', 1e-6, 1e-7);
    expectClose(grad!, [0.25, 0.25, -0.5, 0, 0, 0], 'grad', 1e-6, 1e-7);
    expect(() => tf.tidy(() => crossEntropy(tf.zeros([2, 3]) as tf.Tensor2D, tf.tensor1d([1, 3], 'int32'), -100))).toThrow(
      /target 3 at row 1 is outside the vocabulary \[0, 3\)/,
    );
  });

  it('RMSNorm and SwiGLU: the fused backward passes agree with finite differences', async () => {
    await tf.setBackend('deepen-native');
    const x = normals(2 * 48, 2);
    const wt = tf.tensor1d(normals(48));
    finiteDifferenceCheck('rmsNorm', x, [2, 48], (t) => rmsNorm(t, wt, 1e-6), [0, 7, 50, 95]);
    const gate = normals(33, 3);
    const up = tf.tensor1d(normals(33));
    finiteDifferenceCheck('swiGlu', gate, [33], (t) => swiGlu(t, up), [0, 5, 32]);
    tf.dispose([wt, up]);
  });

  it('causal attention: the op and the kernel refuse shapes that do not fit', async () => {
    await tf.setBackend('deepen-native');
    const z = (...shape: [number, number, number, number]) => tf.zeros(shape) as tf.Tensor4D;
    expect(() => tf.tidy(() => causalAttention(z(1, 3, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), { scale: 1, offset: 0 }))).toThrow(/nKV dividing nH/);
    expect(() => tf.tidy(() => fusedAttention(z(1, 3, 2, 4), z(1, 2, 2, 4), z(1, 2, 2, 4), { scale: 1, offset: 0 }))).toThrow(/DeepenAttention: .*nKV dividing nH/);
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
        const ce = tf.valueAndGrad((l: tf.Tensor) => tf.sum(crossEntropy(l as tf.Tensor2D, tf.tensor1d(targets, 'int32'), -100)))(tf.tensor2d(logits, [N, V]));
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(rmsNorm(a, b, 1e-6))))([tf.tensor2d(x, [2800, 48]), tf.tensor1d(w)]);
        const [dg, du] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(swiGlu(a, b))))([tf.tensor1d(big), tf.tensor1d(big2)]);
        const table = tf.tensor2d(tables, [16, 32]);
        const r = applyRope(tf.tensor3d(rope, [64, 16, 32]), table, table);
        const adam = adamUpdate(tf.tensor1d(big), tf.tensor1d(big2), tf.tensor1d(big2), tf.tensor1d(big.map(Math.abs)), {
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
    const x = tf.tensor4d(normals(2 * 4 * 3 * 16), [2, 4, 3, 16]);
    const kv = tf.tensor4d(normals(2 * 2 * 5 * 16), [2, 2, 5, 16]);
    const table = tf.tensor2d(normals(3 * 16), [3, 16]);
    const w = tf.ones([16]);
    const targets = tf.tensor1d([1, -100, 3, 7, 0, 2], 'int32');
    const watch = new TensorCountWatch('fused ops');
    for (let i = 0; i < 4; i++) {
      tf.tidy(() => {
        const f = (q: tf.Tensor, k: tf.Tensor) => {
          const h = swiGlu(rmsNorm(applyRope(q, table, table), w, 1e-6), q) as tf.Tensor4D;
          const out = causalAttention(h, k as tf.Tensor4D, k as tf.Tensor4D, { scale: 0.25, offset: 2 });
          return tf.sum(crossEntropy(tf.reshape(out, [-1, 16]).slice([0, 0], [6, 16]) as tf.Tensor2D, targets, -100));
        };
        tf.grads(f)([x, kv]).forEach((t) => t.dataSync());
      });
      watch.check(i);
    }
    tf.dispose([x, kv, table, w, targets]);
  });
});
