import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { layerNorm, rmsNorm } from './layers.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

describe('rmsNorm', () => {
  it('matches a hand computation', () => {
    // x = [1, 2, 3, 4]: mean(x^2) = 30/4 = 7.5, so x / sqrt(7.5 + eps) * w.
    const out = tf.tidy(() => rmsNorm(tf.tensor2d([[1, 2, 3, 4]]), tf.tensor1d([1, 1, 2, 2]), 1e-6).arraySync()) as number[][];
    const r = 1 / Math.sqrt(7.5 + 1e-6);
    const want = [1 * r, 2 * r, 3 * r * 2, 4 * r * 2];
    out[0]!.forEach((v, i) => expect(v).toBeCloseTo(want[i] as number, 6));
  });

  it('normalises each row on its own and keeps eps where the input is zero', () => {
    const out = tf.tidy(() => rmsNorm(tf.tensor2d([[0, 0], [3, 4]]), tf.ones([2]), 1e-5).arraySync()) as number[][];
    expect(out[0]).toEqual([0, 0]);
    const r = 1 / Math.sqrt(12.5 + 1e-5);
    expect(out[1]![0]).toBeCloseTo(3 * r, 6);
    expect(out[1]![1]).toBeCloseTo(4 * r, 6);
  });

  it('has gradients that match central differences', () => {
    const x = tf.tensor2d([[0.3, -1.2, 2.0, 0.7], [1.5, 0.1, -0.4, -2.2]]);
    const w = tf.tensor1d([0.9, 1.1, -0.5, 1.3]);
    const upstream = tf.tensor2d([[0.2, -0.3, 0.5, 1.0], [-1.0, 0.4, 0.3, -0.2]]);
    const f = (xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(rmsNorm(xx, ww, 1e-6), upstream)) as tf.Scalar;
    const [gx, gw] = tf.grads(f)([x, w]);
    const eps = 1e-2;
    const xs = x.arraySync() as number[][];
    const ws = w.arraySync() as number[];
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 4; j++) {
        const plus = xs.map((r) => [...r]);
        const minus = xs.map((r) => [...r]);
        plus[i]![j]! += eps;
        minus[i]![j]! -= eps;
        const numeric = tf.tidy(() => (f(tf.tensor2d(plus), w).dataSync()[0]! - f(tf.tensor2d(minus), w).dataSync()[0]!) / (2 * eps));
        expect((gx!.arraySync() as number[][])[i]![j]).toBeCloseTo(numeric, 3);
      }
    for (let j = 0; j < 4; j++) {
      const plus = [...ws];
      const minus = [...ws];
      plus[j]! += eps;
      minus[j]! -= eps;
      const numeric = tf.tidy(() => (f(x, tf.tensor1d(plus)).dataSync()[0]! - f(x, tf.tensor1d(minus)).dataSync()[0]!) / (2 * eps));
      expect((gw!.arraySync() as number[])[j]).toBeCloseTo(numeric, 3);
    }
    tf.dispose([x, w, upstream, gx, gw]);
  });
});

describe('layerNorm', () => {
  it('matches a hand computation, with and without bias', () => {
    // x = [1, 2, 3, 4]: mean 2.5, variance 1.25.
    const r = 1 / Math.sqrt(1.25 + 1e-5);
    const [withBias, without] = tf.tidy(() => {
      const x = tf.tensor2d([[1, 2, 3, 4]]);
      return [
        layerNorm(x, tf.tensor1d([1, 2, 1, 1]), tf.tensor1d([0, 0, 0, 10]), 1e-5).arraySync() as number[][],
        layerNorm(x, tf.ones([4]), null, 1e-5).arraySync() as number[][],
      ];
    });
    const want = [-1.5 * r, -0.5 * r * 2, 0.5 * r, 1.5 * r + 10];
    withBias[0]!.forEach((v, i) => expect(v).toBeCloseTo(want[i] as number, 5));
    without[0]!.forEach((v, i) => expect(v).toBeCloseTo(([-1.5, -0.5, 0.5, 1.5][i] as number) * r, 5));
  });
});
