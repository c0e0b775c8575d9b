/**
 * The batch-1 decode kernels: matrix-vector products (which matMul also takes for one row),
 * the linear layer on arrays, and attention over a KV cache written in place, against the
 * composite ops on the pure-JS cpu engine and plain loops; one thread and several agree bit
 * for bit; bad sizes throw instead of touching memory.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@deepen/core';
import { nativeDecodeKernels } from '../src/native/decode.js';
import * as composite from '../src/ops/composite.js';
import { expectClose, nativeLoad, skipNative, skipReason, startNativeAndCpu } from './native-support.js';

const rng = Rng.fromSeed(5150);
const normals = (n: number, scale = 1) => rng.fillNormal(new Float32Array(n), 0, scale);

/** y [M, N] = x [M, K] w (w [K, N], or [N, K] when transposed), in double precision. */
function referenceLinear(x: Float32Array, w: Float32Array, bias: Float32Array | null, M: number, K: number, N: number, transW: boolean): Float32Array {
  const y = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let k = 0; k < K; k++) sum += (x[m * K + k] as number) * (w[transW ? n * K + k : k * N + n] as number);
      y[m * N + n] = sum + (bias ? (bias[n] as number) : 0);
    }
  }
  return y;
}

/** Runs `work` on `threads` threads of the native engine, restoring the count after. */
function onThreads<T>(threads: number, work: () => T): T {
  if (!nativeLoad.ok) throw new Error('no native engine');
  const before = nativeLoad.binding.blasInfo().threads;
  nativeLoad.binding.setThreads(threads);
  try {
    return work();
  } finally {
    nativeLoad.binding.setThreads(before);
  }
}

describe.skipIf(skipNative)(`decode kernels of the native engine${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(startNativeAndCpu);

  it('are offered on the native engine only, and not under DEEPEN_FUSED=0', async () => {
    await tf.setBackend('cpu');
    expect(nativeDecodeKernels()).toBeNull();
    await tf.setBackend('deepen-native');
    expect(nativeDecodeKernels()).not.toBeNull();
    process.env.DEEPEN_FUSED = '0';
    try {
      expect(nativeDecodeKernels()).toBeNull();
    } finally {
      delete process.env.DEEPEN_FUSED;
    }
  });

  it('read a tensor in place, and refuse a tensor that is not float32', async () => {
    await tf.setBackend('deepen-native');
    const kernels = nativeDecodeKernels()!;
    const t = tf.tensor1d([1, 2, 3]);
    const values = kernels.values(t);
    expect(Array.from(values)).toEqual([1, 2, 3]);
    expect(kernels.values(t)).toBe(values);
    const ints = tf.tensor1d([1, 2], 'int32');
    expect(() => kernels.values(ints)).toThrow(/is int32, expected float32/);
    tf.dispose([t, ints]);
  });

  it('matMul of one row: every transpose, batch broadcasting, and shapes large enough to be split', async () => {
    await tf.setBackend('deepen-native');
    // [a shape, b shape] with one row in a; 700 x 300 and 2048 x 200 weigh over 256 KB (split).
    const cases: Array<[number[], number[]]> = [
      [[1, 5], [5, 3]],
      [[1, 9], [9, 17]],
      [[1, 700], [700, 300]],
      [[1, 2048], [2048, 200]],
      [[3, 1, 33], [33, 40]],
      [[2, 1, 16], [2, 16, 24]],
    ];
    for (const [aShape, bBase] of cases) {
      for (const tb of [false, true]) {
        const bShape = tb ? [...bBase.slice(0, -2), bBase.at(-1)!, bBase.at(-2)!] : bBase;
        const [K, N] = bBase.slice(-2) as [number, number];
        const a = normals(aShape.reduce((p, d) => p * d, 1));
        const b = normals(bShape.reduce((p, d) => p * d, 1));
        const got = tf.tidy(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), false, tb).dataSync());
        // Batch entries: a's and b's matrices as broadcast against each other.
        const batches = got.length / N;
        const expected = new Float32Array(got.length);
        const bMatrices = b.length / (K * N);
        for (let i = 0; i < batches; i++) {
          const ai = a.subarray((i % (a.length / K)) * K, (i % (a.length / K)) * K + K);
          const bi = b.subarray((i % bMatrices) * K * N, (i % bMatrices) * K * N + K * N);
          expected.set(referenceLinear(ai, bi, null, 1, K, N, tb), i * N);
        }
        expectClose(got, expected, `matMul [${aShape}] x [${bShape}] transposeB=${tb}`, 1e-4, 1e-4);
      }
    }
    // A transposed one-row a ([K, 1] stored) is the same K values.
    const x = normals(64);
    const w = normals(64 * 48);
    const plain = tf.tidy(() => tf.matMul(tf.tensor2d(x, [1, 64]), tf.tensor2d(w, [64, 48])).dataSync());
    const transposed = tf.tidy(() => tf.matMul(tf.tensor2d(x, [64, 1]), tf.tensor2d(w, [64, 48]), true, false).dataSync());
    expect(Array.from(transposed)).toEqual(Array.from(plain));
  });

  it('linear: one row and several (column tiles split across threads), with and without bias, w stored [K, N] or [N, K]', async () => {
    await tf.setBackend('deepen-native');
    const kernels = nativeDecodeKernels()!;
    for (const [M, K, N] of [
      [1, 7, 5],
      [1, 768, 512],
      [4, 33, 20],
      // Several rows and columns past one 128-column tile: SGEMM per tile across the pool.
      [5, 64, 300],
    ] as const) {
      for (const transW of [false, true]) {
        for (const withBias of [false, true]) {
          const x = normals(M * K);
          const w = normals(K * N);
          const bias = withBias ? normals(N) : null;
          const y = new Float32Array(M * N);
          kernels.linear(x, w, bias, y, M, K, N, transW);
          expectClose(y, referenceLinear(x, w, bias, M, K, N, transW), `linear ${M}x${K}x${N} transW=${transW} bias=${withBias}`, 1e-4, 1e-4);
        }
      }
    }
  });

  it('matrix-vector products give bit-identical results on one thread and on two', async () => {
    await tf.setBackend('deepen-native');
    const kernels = nativeDecodeKernels()!;
    for (const [K, N, transW] of [
      [2048, 768, false],
      [768, 2048, false],
      [768, 2048, true],
      [100, 50, false],
    ] as const) {
      const x = normals(K);
      const w = normals(K * N);
      const run = () => {
        const y = new Float32Array(N);
        kernels.linear(x, w, null, y, 1, K, N, transW);
        return Array.from(y);
      };
      expect(onThreads(2, run), `${K} x ${N}`).toEqual(onThreads(1, run));
    }
  });

  for (const c of [
    { label: 'a prefill of 5 into an empty cache', T: 5, offset: 0, nH: 4, nKV: 2, hd: 8, capacity: 9, window: 0 },
    { label: 'one step after 6 cached positions (GQA)', T: 1, offset: 6, nH: 4, nKV: 2, hd: 8, capacity: 12, window: 0 },
    { label: 'two steps after 200, split across threads', T: 2, offset: 200, nH: 8, nKV: 8, hd: 64, capacity: 256, window: 0 },
    { label: 'one step after 30 (capacity not a multiple of 16)', T: 1, offset: 30, nH: 6, nKV: 3, hd: 32, capacity: 37, window: 0 },
    { label: 'a sliding window of 4', T: 3, offset: 7, nH: 2, nKV: 1, hd: 16, capacity: 10, window: 4 },
  ]) {
    it(`attendCached, ${c.label}: the composite rotary and causal attention over the concatenated cache`, async () => {
      const { T, offset, nH, nKV, hd, capacity, window } = c;
      const q = normals(T * nH * hd);
      const k = normals(T * nKV * hd);
      const v = normals(T * nKV * hd);
      const past = { k: normals(nKV * offset * hd), v: normals(nKV * offset * hd) };
      const cos = normals(T * hd, 0.7);
      const sin = normals(T * hd, 0.7);
      const scale = 1 / Math.sqrt(hd);
      // The caches holding the past positions: keys [nKV, hd, capacity] (transposed), values [nKV, capacity, hd].
      const kCache = new Float32Array(nKV * capacity * hd);
      const vCache = new Float32Array(nKV * capacity * hd);
      for (let j = 0; j < nKV; j++) {
        for (let p = 0; p < offset; p++) for (let d = 0; d < hd; d++) kCache[(j * hd + d) * capacity + p] = past.k[(j * offset + p) * hd + d]!;
        vCache.set(past.v.subarray(j * offset * hd, (j + 1) * offset * hd), j * capacity * hd);
      }
      const run = () => {
        const kc = kCache.slice();
        const vc = vCache.slice();
        const out = new Float32Array(T * nH * hd);
        nativeDecodeKernels()!.attendCached({ q, k, v, kCache: kc, vCache: vc, out, cos, sin, positions: T, offset, heads: nH, kvHeads: nKV, headDim: hd, capacity, scale, window });
        return { out, kc, vc };
      };
      await tf.setBackend('deepen-native');
      const one = onThreads(1, run);
      const two = onThreads(2, run);
      expect(Array.from(two.out)).toEqual(Array.from(one.out));
      await tf.setBackend('cpu');
      const reference = tf.tidy(() => {
        const heads = (x: Float32Array, n: number) => tf.transpose(tf.tensor4d(x, [1, T, n, hd]), [0, 2, 1, 3]);
        const table = (x: Float32Array) => tf.tensor2d(x, [T, hd]);
        const kNew = composite.applyRope(heads(k, nKV), table(cos), table(sin));
        const keys = tf.concat([tf.tensor4d(past.k, [1, nKV, offset, hd]), kNew], 2) as tf.Tensor4D;
        const values = tf.concat([tf.tensor4d(past.v, [1, nKV, offset, hd]), heads(v, nKV)], 2) as tf.Tensor4D;
        const queries = composite.applyRope(heads(q, nH), table(cos), table(sin)) as tf.Tensor4D;
        const out = composite.causalAttention(queries, keys, values, { scale, offset, ...(window > 0 ? { window } : {}) });
        return { out: tf.transpose(out, [0, 2, 1, 3]).dataSync(), keys: keys.dataSync(), values: values.dataSync() };
      });
      await tf.setBackend('deepen-native');
      expectClose(one.out, reference.out, 'attention output', 1e-4, 1e-5);
      const S = offset + T;
      for (let j = 0; j < nKV; j++) {
        const keys = Float32Array.from({ length: S * hd }, (_, i) => one.kc[(j * hd + (i % hd)) * capacity + Math.floor(i / hd)]!);
        expectClose(keys, reference.keys.subarray(j * S * hd, (j + 1) * S * hd), `rotated keys of head ${j}`, 1e-6, 1e-6);
        expect(Array.from(one.vc.subarray(j * capacity * hd, (j * capacity + S) * hd)), `values of head ${j}`).toEqual(Array.from(reference.values.subarray(j * S * hd, (j + 1) * S * hd)));
      }
    });
  }

  it('throw instead of writing out of bounds when called with wrong sizes', async () => {
    await tf.setBackend('deepen-native');
    const kernels = nativeDecodeKernels()!;
    const f = (n: number) => new Float32Array(n);
    expect(() => kernels.linear(f(6), f(12), null, f(3), 2, 3, 4)).toThrow(/linear: x, w and y do not fit/);
    expect(() => kernels.linear(f(3), f(12), f(3), f(4), 1, 3, 4)).toThrow(/bias must have N values/);
    expect(() => kernels.rmsNorm(f(7), f(4), f(7), 1e-6)).toThrow(/rmsNorm: sizes do not match/);
    const step = { q: f(8), k: f(8), v: f(8), kCache: f(32), vCache: f(32), out: f(8), cos: f(8), sin: f(8), positions: 1, offset: 3, heads: 1, kvHeads: 1, headDim: 8, capacity: 4, scale: 1 };
    expect(() => kernels.attendCached(step)).not.toThrow();
    expect(() => kernels.attendCached({ ...step, offset: 4 })).toThrow(/offset \+ T exceeds the cache capacity/);
    expect(() => kernels.attendCached({ ...step, kCache: f(31) })).toThrow(/caches are not \[nKV, hd, capacity\] and \[nKV, capacity, hd\]/);
    expect(() => kernels.attendCached({ ...step, heads: 3, kvHeads: 2 })).toThrow(/heads must divide/);
    expect(() => kernels.attendCached({ ...step, out: f(4) })).toThrow(/wrong size/);
  });
});
