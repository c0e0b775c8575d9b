import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../init.js';
import { assertNoLeaks } from '../leaks.js';
import { Rng } from '@deepen/core';
import { originalKernel, scatterAddSegments } from './index.js';

/** Plain-JS reference: out[s] = sum of rows of x whose id is s. */
function referenceSegmentSum(x: Float32Array, ids: Int32Array, numSegments: number): Float32Array {
  const inner = x.length / ids.length;
  const out = new Float32Array(numSegments * inner);
  ids.forEach((s, row) => {
    if (s < 0 || s >= numSegments) return;
    for (let j = 0; j < inner; j++) out[s * inner + j] = (out[s * inner + j] as number) + (x[row * inner + j] as number);
  });
  return out;
}

function randomCase(seed: number, rows: number, inner: number, numSegments: number) {
  const rng = Rng.fromSeed(seed);
  const x = rng.fillNormal(new Float32Array(rows * inner));
  const ids = Int32Array.from({ length: rows }, () => rng.int(numSegments + 2) - 1); // includes -1 and numSegments
  return { x, ids };
}

describe('scatterAddSegments', () => {
  it('sums rows by segment and drops out-of-range ids (hand example)', () => {
    const x = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]); // 4 rows of 2
    const ids = new Int32Array([2, 0, 2, -1]);
    const out = new Float32Array(6).fill(99); // stale contents must be overwritten
    scatterAddSegments(x, ids, 3, out);
    expect(Array.from(out)).toEqual([3, 4, 0, 0, 6, 8]);
  });
});

for (const engine of ['cpu', 'wasm'] as const) {
  describe(`UnsortedSegmentSum and the gather gradient on ${engine}`, () => {
    it('matches the plain reference on random shapes, including 3-D inputs', async () => {
      await initBackend({ engine });
      expect(tf.getBackend()).toBe(engine);
      for (const [seed, rows, inner, segments] of [
        [1, 37, 5, 11],
        [2, 256, 16, 64],
        [3, 9, 1, 4],
      ] as const) {
        const { x, ids } = randomCase(seed, rows, inner, segments);
        const got = tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d(x, [rows, inner]), tf.tensor1d(ids, 'int32'), segments).dataSync());
        const want = referenceSegmentSum(x, ids, segments);
        for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i] as number, 5);
      }
      const { x, ids } = randomCase(4, 12, 6, 5);
      const got3d = tf.tidy(() => {
        const out = tf.unsortedSegmentSum(tf.tensor3d(x, [12, 2, 3]), tf.tensor1d(ids, 'int32'), 5);
        expect(out.shape).toEqual([5, 2, 3]);
        return out.dataSync();
      });
      const want3d = referenceSegmentSum(x, ids, 5);
      for (let i = 0; i < want3d.length; i++) expect(got3d[i]).toBeCloseTo(want3d[i] as number, 5);
    });

    it('gives the embedding gradient of a one-hot matmul', async () => {
      await initBackend({ engine });
      const vocab = 50;
      const hidden = 8;
      const rng = Rng.fromSeed(11);
      const ids = Int32Array.from({ length: 40 }, () => rng.int(vocab));
      const upstream = rng.fillNormal(new Float32Array(40 * hidden));
      const [viaGather, viaOneHot] = tf.tidy(() => {
        const table = tf.tensor2d(rng.fillNormal(new Float32Array(vocab * hidden)), [vocab, hidden]);
        const idsT = tf.tensor1d(ids, 'int32');
        const w = tf.tensor2d(upstream, [40, hidden]);
        const g1 = tf.grad((t: tf.Tensor) => tf.gather(t, idsT).mul(w).sum())(table);
        const g2 = tf.grad((t: tf.Tensor) => tf.matMul(tf.oneHot(idsT, vocab).toFloat(), t).mul(w).sum())(table);
        return [g1.dataSync(), g2.dataSync()];
      });
      for (let i = 0; i < viaOneHot.length; i++) expect(viaGather[i]).toBeCloseTo(viaOneHot[i] as number, 5);
    });
  });
}

describe('the replaced cpu kernel', () => {
  it('agrees with the tfjs kernel it replaced', async () => {
    await initBackend({ engine: 'cpu' });
    const original = originalKernel('UnsortedSegmentSum', 'cpu');
    expect(original).toBeDefined();
    const { x, ids } = randomCase(21, 64, 7, 13);
    const [ours, theirs] = tf.tidy(() => {
      const xT = tf.tensor2d(x, [64, 7]);
      const idsT = tf.tensor1d(ids.map((s) => Math.min(Math.max(s, 0), 12)), 'int32');
      const info = original!.kernelFunc({
        inputs: { x: xT, segmentIds: idsT },
        attrs: { numSegments: 13 },
        backend: tf.backend(),
      }) as tf.TensorInfo;
      const theirs = tf.engine().makeTensorFromTensorInfo(info);
      return [tf.unsortedSegmentSum(xT, idsT, 13).dataSync(), theirs.dataSync()];
    });
    for (let i = 0; i < theirs.length; i++) expect(ours[i]).toBeCloseTo(theirs[i] as number, 5);
  });
});

describe('kernels wasm lacks', () => {
  it('run through the cpu engine and give the cpu result', async () => {
    const report = await initBackend({ engine: 'wasm' });
    expect(report.kernels.bridged).toContain('Einsum');
    const a = Rng.fromSeed(1).fillNormal(new Float32Array(24));
    const b = Rng.fromSeed(2).fillNormal(new Float32Array(20));
    // The staging copies on the cpu engine must be released too, not only the wasm tensors.
    const cpuBuffersBefore = tf.findBackend('cpu')!.numDataIds();
    const onWasm = assertNoLeaks('bridged einsum', () =>
      tf.tidy(() => tf.einsum('ij,jk->ik', tf.tensor2d(a, [6, 4]), tf.tensor2d(b, [4, 5])).dataSync()),
    );
    expect(tf.findBackend('cpu')!.numDataIds()).toBe(cpuBuffersBefore);
    await initBackend({ engine: 'cpu' });
    const onCpu = tf.tidy(() => tf.matMul(tf.tensor2d(a, [6, 4]), tf.tensor2d(b, [4, 5])).dataSync());
    expect(onWasm.length).toBe(30);
    for (let i = 0; i < onCpu.length; i++) expect(onWasm[i]).toBeCloseTo(onCpu[i] as number, 5);
  });
});
