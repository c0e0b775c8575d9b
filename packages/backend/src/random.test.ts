import * as tf from '@tensorflow/tfjs';
import { Rng } from '@deepen/core';
import { describe, expect, it } from 'vitest';
import { randomNormal } from './random.js';

describe('randomNormal', () => {
  it('builds reproducible tensors', async () => {
    await tf.setBackend('cpu');
    const a = randomNormal(Rng.fromSeed(3), [64, 32], 0.02);
    const b = randomNormal(Rng.fromSeed(3), [64, 32], 0.02);
    expect(a.shape).toEqual([64, 32]);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    tf.dispose([a, b]);
  });
});
