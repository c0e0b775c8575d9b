import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertNoLeaks, liveTensorCount, TensorCountWatch, TensorLeakError } from './leaks.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('assertNoLeaks', () => {
  it('passes work that cleans up after itself and returns its result', () => {
    const value = assertNoLeaks('tidy work', () => tf.tidy(() => tf.ones([3]).sum().arraySync()));
    expect(value).toBe(3);
  });

  it('names the block and the count when tensors leak', () => {
    let leaked: tf.Tensor | undefined;
    try {
      assertNoLeaks('leaky block', () => {
        leaked = tf.ones([2]).neg(); // the intermediate ones([2]) and the result stay alive
      });
      expect.unreachable('a leak must throw');
    } catch (error) {
      expect(error).toBeInstanceOf(TensorLeakError);
      expect((error as Error).message).toMatch(/leaky block: 2 tensor\(s\) leaked/);
    }
    tf.dispose(leaked);
  });

  it('checks async work after it settles', async () => {
    let leaked: tf.Tensor | undefined;
    await expect(
      assertNoLeaks('async leak', async () => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        leaked = tf.zeros([1]);
      }),
    ).rejects.toThrow(/async leak: 1 tensor/);
    tf.dispose(leaked);
  });

  it('allows tensors the block is expected to return', () => {
    const t = assertNoLeaks('returns one', () => tf.tidy(() => tf.ones([2]).mul(2)), { expectedNew: 1 });
    expect(Array.from(t.dataSync())).toEqual([2, 2]);
    t.dispose();
  });
});

describe('TensorCountWatch', () => {
  it('stays quiet while a loop is flat and fails on the iteration that grows', () => {
    const start = liveTensorCount();
    const watch = new TensorCountWatch('loop');
    const kept: tf.Tensor[] = [];
    for (let i = 0; i < 3; i++) {
      tf.tidy(() => {
        tf.ones([4]).square().sum();
      });
      watch.check(i);
    }
    kept.push(tf.ones([1]));
    expect(() => watch.check(3)).toThrow(/loop, iteration 3: 1 tensor\(s\) leaked/);
    tf.dispose(kept);
    expect(liveTensorCount()).toBe(start);
  });
});
