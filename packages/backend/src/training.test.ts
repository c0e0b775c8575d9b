import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from './init.js';
import { TensorCountWatch } from './leaks.js';
import { Rng } from '@deepen/core';
import { randomNormal } from './random.js';

/**
 * The smallest model with every piece a language model's backward pass needs from the
 * engine: an embedding (gather, whose gradient is UnsortedSegmentSum), a matmul and a
 * softmax cross-entropy. It learns a fixed next-token mapping, so the loss must fall.
 */
async function trainTinyModel(engine: 'cpu' | 'wasm', steps: number) {
  await initBackend({ engine });
  const vocab = 32;
  const hidden = 16;
  const rng = Rng.fromSeed(2024);
  const embedding = tf.variable(randomNormal(rng.fork('embed'), [vocab, hidden], 0.1), true, `embed_${engine}`);
  const head = tf.variable(randomNormal(rng.fork('head'), [hidden, vocab], 0.1), true, `head_${engine}`);
  const inputs = tf.tensor1d(Int32Array.from({ length: 64 }, (_, i) => (i * 7) % vocab), 'int32');
  const targets = tf.tensor1d(Int32Array.from({ length: 64 }, (_, i) => (i * 7 + 3) % vocab), 'int32');
  const optimizer = tf.train.adam(0.05);
  const lossFn = () =>
    tf.tidy(() => {
      const logits = tf.matMul(tf.gather(embedding, inputs), head);
      const logProbs = tf.logSoftmax(logits);
      return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(targets, vocab).toFloat(), logProbs), -1))) as tf.Scalar;
    });

  const losses: number[] = [];
  const watch = new TensorCountWatch(`tiny model on ${engine}`);
  for (let step = 0; step < steps; step++) {
    const loss = optimizer.minimize(lossFn, true, [embedding, head]);
    losses.push((loss as tf.Scalar).dataSync()[0] as number);
    loss?.dispose();
    // Adam creates its moment variables on the first step; from the second on nothing may grow.
    if (step >= 1) watch.check(step);
  }
  optimizer.dispose();
  tf.dispose([embedding, head, inputs, targets]);
  return losses;
}

describe('training through the engine', () => {
  for (const engine of ['cpu', 'wasm'] as const) {
    it(`learns a tiny embedding + matmul + softmax model on ${engine}, with a flat tensor count`, async () => {
      const losses = await trainTinyModel(engine, 60);
      const first = losses[0] as number;
      const last = losses.at(-1) as number;
      expect(first).toBeGreaterThan(Math.log(32) * 0.8); // starts near chance
      expect(last).toBeLessThan(first * 0.1);
      expect(losses.every(Number.isFinite)).toBe(true);
    });
  }

  it('gives the same loss curve on cpu and wasm within float32 tolerance', async () => {
    const onCpu = await trainTinyModel('cpu', 15);
    const onWasm = await trainTinyModel('wasm', 15);
    onCpu.forEach((loss, i) => expect(Math.abs(loss - (onWasm[i] as number))).toBeLessThan(1e-3 * Math.max(1, loss)));
  });
});
