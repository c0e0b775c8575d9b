/**
 * Every native kernel against the pure-JS cpu engine (or a plain-loop reference where the cpu
 * engine's own semantics are narrower) on random shapes: broadcasting, transposed operands,
 * batch dimensions, special values, and the errors a bad call must raise.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '@deepen/core';
import { expectClose, nativeLoad, onBoth, skipNative, skipReason, startNativeAndCpu } from './native-support.js';

const rng = Rng.fromSeed(20261123);
const normals = (n: number, scale = 1) => rng.fillNormal(new Float32Array(n), 0, scale);
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** A random shape and two shapes that broadcast to it (dims set to 1, leading dims dropped). */
function broadcastCase(): { out: number[]; a: number[]; b: number[] } {
  const rank = 1 + rng.int(4);
  const out = Array.from({ length: rank }, () => (rng.float() < 0.2 ? 1 + rng.int(40) : 1 + rng.int(6)));
  const operand = () => {
    const drop = rng.float() < 0.3 ? rng.int(rank) : 0;
    return out.slice(drop).map((d) => (rng.float() < 0.35 ? 1 : d));
  };
  return { out, a: operand(), b: operand() };
}

/** Plain-loop batched matmul with full broadcasting of the batch dimensions. */
function referenceMatMul(a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], ta: boolean, tb: boolean): Float32Array {
  const [ar, ac] = aShape.slice(-2) as [number, number];
  const [br, bc] = bShape.slice(-2) as [number, number];
  const M = ta ? ac : ar;
  const K = ta ? ar : ac;
  const N = tb ? br : bc;
  const batchA = aShape.slice(0, -2);
  const batchB = bShape.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  const pad = (s: number[]) => [...Array(rank - s.length).fill(1), ...s];
  const [pa, pb] = [pad(batchA), pad(batchB)];
  const outBatch = pa.map((d, i) => Math.max(d, pb[i] as number));
  const out = new Float32Array(size(outBatch) * M * N);
  for (let flat = 0; flat < size(outBatch); flat++) {
    let rest = flat;
    let ia = 0;
    let ib = 0;
    let sa = 1;
    let sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const idx = rest % (outBatch[d] as number);
      rest = Math.floor(rest / (outBatch[d] as number));
      ia += (pa[d] === 1 ? 0 : idx) * sa;
      ib += (pb[d] === 1 ? 0 : idx) * sb;
      sa *= pa[d] as number;
      sb *= pb[d] as number;
    }
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let sum = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ia * ar * ac + (ta ? k * ac + i : i * ac + k)] as number;
          const bv = b[ib * br * bc + (tb ? j * bc + k : k * bc + j)] as number;
          sum += av * bv;
        }
        out[flat * M * N + i * N + j] = sum;
      }
    }
  }
  return out;
}

describe.skipIf(skipNative)(`native engine kernels against the cpu engine${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(startNativeAndCpu);

  it('loads the addon and reports BLAS and the instruction set it dispatched to', () => {
    expect(nativeLoad.ok).toBe(true);
    if (!nativeLoad.ok) return;
    const blas = nativeLoad.binding.blasInfo();
    expect(blas.config).toMatch(/OpenBLAS/);
    expect(blas.threads).toBeGreaterThanOrEqual(1);
    expect(['avx512', 'avx2', 'baseline']).toContain(nativeLoad.binding.isa());
  });

  it('matrix products: every transpose combination, batch dimensions and their broadcasting', async () => {
    const cases: Array<[number[], number[]]> = [
      [[7, 5], [5, 3]],
      [[1, 1], [1, 1]],
      [[64, 33], [33, 65]],
      [[3, 9, 4], [3, 4, 6]],
      [[1, 9, 4], [5, 4, 6]],
      [[5, 9, 4], [4, 6]],
      [[2, 1, 3, 4], [1, 3, 4, 2]],
      [[2, 3, 17, 8], [8, 19]],
    ];
    for (const [aBase, bBase] of cases) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          const swap = (s: number[], t: boolean) => (t ? [...s.slice(0, -2), s.at(-1)!, s.at(-2)!] : s);
          const aShape = swap(aBase, ta);
          const bShape = swap(bBase, tb);
          const a = normals(size(aShape));
          const b = normals(size(bShape));
          await tf.setBackend('deepen-native');
          const got = tf.tidy(() => tf.matMul(tf.tensor(a, aShape), tf.tensor(b, bShape), ta, tb).dataSync());
          expectClose(got, referenceMatMul(a, aShape, b, bShape, ta, tb), `matMul ${aShape} x ${bShape} ${ta} ${tb}`, 1e-4, 1e-4);
        }
      }
    }
  });

  it('matrix products: mismatched inner dimensions fail with both shapes named', async () => {
    await tf.setBackend('deepen-native');
    expect(() => tf.tidy(() => tf.matMul(tf.ones([2, 3]), tf.ones([4, 5])))).toThrow(/inner shapes \(3\) and \(4\)/);
  });

  it('binary and comparison kernels with random broadcasting, including NaN and infinities', async () => {
    const ops: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
      ['add', tf.add],
      ['sub', tf.sub],
      ['mul', tf.mul],
      ['div', tf.div],
      ['maximum', tf.maximum],
      ['minimum', tf.minimum],
      ['squaredDifference', tf.squaredDifference],
      ['pow', (a, b) => tf.pow(tf.abs(a), b)],
      ['equal', tf.equal],
      ['notEqual', tf.notEqual],
      ['less', tf.less],
      ['lessEqual', tf.lessEqual],
      ['greater', tf.greater],
      ['greaterEqual', tf.greaterEqual],
    ];
    for (let trial = 0; trial < 25; trial++) {
      const { a: aShape, b: bShape } = broadcastCase();
      const a = normals(size(aShape));
      const b = normals(size(bShape));
      // Shared values make equality tests meaningful; specials check NaN and infinity handling.
      if (a.length > 3 && b.length > 3) {
        b[0] = a[0] as number;
        a[1] = NaN;
        b[2] = Infinity;
        a[3] = -Infinity;
      }
      for (const [name, op] of ops) {
        const { native, cpu } = await onBoth(() =>
          tf.tidy(() => {
            const out = op(tf.tensor(a, aShape), tf.tensor(b, bShape));
            return { shape: out.shape, dtype: out.dtype, values: Array.from(out.dataSync()) };
          }),
        );
        expect(native.shape, `${name} ${aShape} ${bShape}`).toEqual(cpu.shape);
        expect(native.dtype).toBe(cpu.dtype);
        expectClose(native.values, cpu.values, `${name} [${aShape}] with [${bShape}]`, name === 'pow' ? 2e-6 : 1e-6, 0);
      }
    }
  });

  it('int32 and mixed inputs keep the cpu semantics', async () => {
    const { native, cpu } = await onBoth(() =>
      tf.tidy(() => {
        const i = tf.tensor1d([1, 2, 3, 4], 'int32');
        return [tf.add(i, tf.scalar(2, 'int32')), tf.mul(i, tf.tensor1d([1, 0, -1, 2], 'int32')), tf.notEqual(i, 3), tf.add(tf.cast(i, 'float32'), 0.5)].map((t) => [
          t.dtype,
          ...Array.from(t.dataSync()),
        ]);
      }),
    );
    expect(native).toEqual(cpu);
  });

  it('unary kernels on ordinary and special values', async () => {
    const specials = [0, -0, 1, -1, 2.5, 20, 87.9, 88.5, 89, -86.9, -87.5, -100, -1e9, 1e-30, 1e30, NaN, Infinity, -Infinity];
    const x = Float32Array.from([...specials, ...normals(200, 4)]);
    const ops: Array<[string, (t: tf.Tensor) => tf.Tensor, number]> = [
      ['exp', tf.exp, 3e-7],
      ['log', tf.log, 1e-7],
      ['neg', tf.neg, 0],
      ['sigmoid', tf.sigmoid, 3e-7],
      ['sqrt', tf.sqrt, 1e-7],
      ['rsqrt', tf.rsqrt, 2e-7],
      ['square', tf.square, 1e-7],
      ['abs', tf.abs, 0],
      ['reciprocal', tf.reciprocal, 1e-7],
      ['tanh', tf.tanh, 1e-6],
      ['relu', tf.relu, 0],
      ['log1p', tf.log1p, 1e-6],
    ];
    for (const [name, op, rtol] of ops) {
      const { native, cpu } = await onBoth(() => tf.tidy(() => Array.from(op(tf.tensor1d(x)).dataSync())));
      expectClose(native, cpu, name, rtol, 1e-30);
    }
  });

  it('reductions over any set of axes, adjacent or not, with and without keepDims', async () => {
    const ops: Array<[string, (t: tf.Tensor, axes: number[], keep: boolean) => tf.Tensor]> = [
      ['sum', tf.sum],
      ['mean', tf.mean],
      ['max', tf.max],
      ['min', tf.min],
      ['prod', (t, axes, keep) => tf.prod(tf.add(tf.mul(t, 0.05), 1), axes, keep)],
    ];
    for (let trial = 0; trial < 20; trial++) {
      // Every fourth case has long rows (vectorised loops and their remainders) in at most two dims.
      const long = trial % 4 === 0;
      const rank = 1 + rng.int(long ? 2 : 4);
      const shape = Array.from({ length: rank }, () => 1 + rng.int(long ? 300 : 7));
      const axes = [...Array(rank).keys()].filter(() => rng.float() < 0.5);
      if (axes.length === 0) axes.push(rng.int(rank));
      const x = normals(size(shape));
      if (trial === 3) x[0] = NaN;
      for (const keep of [false, true]) {
        for (const [name, op] of ops) {
          const { native, cpu } = await onBoth(() =>
            tf.tidy(() => {
              const out = op(tf.tensor(x, shape), axes, keep);
              return { shape: out.shape, values: Array.from(out.dataSync()) };
            }),
          );
          expect(native.shape, `${name} ${shape} over ${axes}`).toEqual(cpu.shape);
          expectClose(native.values, cpu.values, `${name} [${shape}] over [${axes}] keepDims=${keep}`, 1e-5, 1e-5);
        }
      }
    }
  });

  it('argMax and argMin along any axis, ties and NaN as the cpu engine', async () => {
    for (const shape of [[7], [3, 5], [2, 4, 257], [4, 1, 6]]) {
      const x = Float32Array.from(normals(size(shape)), (v, i) => (i % 5 === 0 ? 1 : v));
      x[2] = NaN;
      for (let axis = 0; axis < shape.length; axis++) {
        const { native, cpu } = await onBoth(() => tf.tidy(() => [tf.argMax(tf.tensor(x, shape), axis), tf.argMin(tf.tensor(x, shape), axis)].map((t) => ({ shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync()) }))));
        expect(native, `[${shape}] axis ${axis}`).toEqual(cpu);
      }
    }
  });

  it('softmax and log-softmax of rows, including masked (-1e9) and long rows', async () => {
    for (const shape of [[3, 5], [2, 4, 257], [6, 32000], [1, 1]]) {
      const x = normals(size(shape), 3);
      for (let i = 0; i < x.length; i += 7) x[i] = -1e9;
      const { native, cpu } = await onBoth(() => tf.tidy(() => [Array.from(tf.softmax(tf.tensor(x, shape)).dataSync()), Array.from(tf.logSoftmax(tf.tensor(x, shape)).dataSync())]));
      expectClose(native[0]!, cpu[0]!, `softmax ${shape}`, 2e-5, 1e-7);
      expectClose(native[1]!, cpu[1]!, `logSoftmax ${shape}`, 2e-5, 2e-5);
    }
  });

  it('transpose, slice, split and concat move float32, int32 and bool elements exactly', async () => {
    for (let trial = 0; trial < 12; trial++) {
      const rank = 1 + rng.int(5);
      const shape = Array.from({ length: rank }, () => 1 + rng.int(6));
      const perm = Array.from(rng.permutation(rank));
      const begin = shape.map((d) => rng.int(d));
      const sliceSize = shape.map((d, i) => (rng.float() < 0.2 ? -1 : 1 + rng.int(d - (begin[i] as number))));
      const axis = rng.int(rank);
      for (const dtype of ['float32', 'int32', 'bool'] as const) {
        const values = Array.from({ length: size(shape) }, (_, i) => (dtype === 'bool' ? i % 3 === 0 : dtype === 'int32' ? i * 7 - 50 : (i * 0.37) % 5));
        const { native, cpu } = await onBoth(() =>
          tf.tidy(() => {
            const x = tf.tensor(values as number[], shape, dtype);
            const other = tf.tensor(values as number[], shape, dtype);
            const parts = tf.split(x, [1, (shape[axis] as number) - 1].filter((s) => s > 0), axis);
            return [tf.transpose(x, perm), tf.slice(x, begin, sliceSize), ...parts, tf.concat([x, other, x], axis)].map((t) => ({ shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync()) }));
          }),
        );
        expect(native, `${dtype} [${shape}] perm [${perm}] slice [${begin}]+[${sliceSize}] axis ${axis}`).toEqual(cpu);
      }
    }
  });

  it('gather along any axis, its gradient (UnsortedSegmentSum), and an out-of-range index error', async () => {
    const x = normals(5 * 7 * 3);
    const indices = Int32Array.from([4, 0, 4, 2, 1, 3]);
    const { native, cpu } = await onBoth(() =>
      tf.tidy(() => {
        const t = tf.tensor3d(x, [5, 7, 3]);
        const idx = tf.tensor2d(indices, [2, 3], 'int32');
        const grad = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.gather(v, tf.tensor1d(indices, 'int32')), tf.range(1, 7 * 3 * 6 + 1).reshape([6, 7, 3]))))(t);
        return [tf.gather(t, idx, 0), tf.gather(t, tf.tensor1d([6, 0, 2], 'int32'), 1), tf.gather(t, tf.tensor2d([2, 0, 1, 1], [2, 2], 'int32'), 2), grad].map((o) => ({ shape: o.shape, values: Array.from(o.dataSync()) }));
      }),
    );
    expect(native.map((o) => o.shape)).toEqual(cpu.map((o) => o.shape));
    native.forEach((o, i) => expectClose(o.values, cpu[i]!.values, `gather case ${i}`, 1e-6, 1e-6));
    await tf.setBackend('deepen-native');
    expect(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([0, 3], 'int32')))).toThrow(/index value 3 is not in \[0, 2\]/);
  });

  it('UnsortedSegmentSum drops out-of-range ids as TensorFlow does', async () => {
    const x = normals(9 * 4);
    const ids = Int32Array.from([0, 2, -1, 2, 5, 1, 0, 3, 2]);
    const { native, cpu } = await onBoth(() => tf.tidy(() => Array.from(tf.unsortedSegmentSum(tf.tensor2d(x, [9, 4]), tf.tensor1d(ids, 'int32'), 4).dataSync())));
    expectClose(native, cpu, 'segment sum', 1e-6, 1e-6);
  });

  it('select, cast, addN and fused matMul with bias and activation', async () => {
    const a = normals(4 * 6);
    const b = normals(6 * 5);
    const bias = normals(5);
    const { native, cpu } = await onBoth(() =>
      tf.tidy(() => {
        const x = tf.tensor2d(a, [4, 6]);
        const y = tf.tensor2d(b, [6, 5]);
        const cond = tf.greater(x, 0);
        return [
          tf.where(cond, x, tf.neg(x)),
          tf.cast(tf.tensor1d([1, 0, 3], 'int32'), 'float32'),
          tf.cast(cond, 'float32'),
          tf.addN([x, x, tf.ones([4, 6])]),
          tf.fused.matMul({ a: x, b: y, bias: tf.tensor1d(bias), activation: 'relu' }),
          tf.fused.matMul({ a: x, b: tf.transpose(y), transposeB: true, activation: 'sigmoid' }),
        ].map((t) => ({ shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync()) }));
      }),
    );
    expect(native.map((o) => [o.shape, o.dtype])).toEqual(cpu.map((o) => [o.shape, o.dtype]));
    native.forEach((o, i) => expectClose(o.values, cpu[i]!.values, `case ${i}`, 1e-5, 1e-6));
  });

  it('gradients through a composite function match the cpu engine', async () => {
    const xv = normals(3 * 4 * 8);
    const wv = normals(8 * 6, 0.5);
    const f = (x: tf.Tensor, w: tf.Tensor) => {
      const h = tf.matMul(tf.reshape(x, [12, 8]), w);
      const s = tf.softmax(tf.mul(h, tf.sigmoid(h)));
      const r = tf.sum(tf.square(tf.sub(x, tf.mean(x, -1, true))), [0, 2]);
      return tf.add(tf.sum(tf.mul(s, tf.log(tf.add(tf.abs(h), 1)))), tf.sum(tf.sqrt(tf.add(r, 1))));
    };
    const { native, cpu } = await onBoth(() =>
      tf.tidy(() => {
        const [gx, gw] = tf.grads(f)([tf.tensor3d(xv, [3, 4, 8]), tf.tensor2d(wv, [8, 6])]);
        return [Array.from(gx!.dataSync()), Array.from(gw!.dataSync())];
      }),
    );
    expectClose(native[0]!, cpu[0]!, 'dx', 1e-4, 1e-5);
    expectClose(native[1]!, cpu[1]!, 'dw', 1e-4, 1e-5);
  });

  it('throws instead of writing out of bounds when called with wrong sizes or types', () => {
    if (!nativeLoad.ok) return;
    const native = nativeLoad.binding;
    const offsets = Int32Array.of(0);
    expect(() => native.batchedGemm(new Float32Array(4), new Float32Array(4), new Float32Array(3), 2, 2, 2, false, false, offsets, offsets)).toThrow(/output too small/);
    expect(() => native.batchedGemm(new Float32Array(4), new Float32Array(4), new Float32Array(4), 2, 2, 2, false, false, Int32Array.of(1), offsets)).toThrow(/a offset out of range/);
    expect(() => native.unary(0, new Float32Array(4), new Float32Array(3))).toThrow(/sizes differ/);
    expect(() => native.unary(0, new Int32Array(4) as unknown as Float32Array, new Float32Array(4))).toThrow(/wrong element type/);
    expect(() => native.transpose(new Float32Array(6), new Float32Array(6), Int32Array.of(2, 3), Int32Array.of(0, 0))).toThrow(/not a permutation/);
    expect(() => native.slice(new Float32Array(6), new Float32Array(4), Int32Array.of(2, 3), Int32Array.of(1, 1), Int32Array.of(2, 2))).toThrow(/outside the input/);
    // A 2-byte input would have been copied as 4-byte elements, reading past its end.
    expect(() => native.concat([new Int16Array(4) as unknown as Int32Array], new Float32Array(4), 1, Int32Array.of(4))).toThrow(/element types differ/);
    expect(() => native.concat([new Float64Array(4) as unknown as Float32Array], new Float32Array(4), 1, Int32Array.of(4))).toThrow(/element types differ/);
  });
});
