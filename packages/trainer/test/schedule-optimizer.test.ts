import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam, lrAt, validateSchedule } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

describe('learning-rate schedules', () => {
  const base = { lr: 1e-3, totalSteps: 110, warmup: 10, minLrRatio: 0.1 };
  it('warms up linearly, then decays by cosine to min_lr_ratio', () => {
    expect(lrAt(0, { ...base, kind: 'cosine' })).toBeCloseTo(1e-4, 12);
    expect(lrAt(9, { ...base, kind: 'cosine' })).toBeCloseTo(1e-3, 12);
    expect(lrAt(10, { ...base, kind: 'cosine' })).toBeCloseTo(1e-3, 12);
    expect(lrAt(60, { ...base, kind: 'cosine' })).toBeCloseTo(1e-4 + 0.9e-3 * 0.5, 12); // halfway: cos(pi/2) = 0
    expect(lrAt(110, { ...base, kind: 'cosine' })).toBeCloseTo(1e-4, 12);
  });
  it('linear, constant and warmup-stable-decay', () => {
    expect(lrAt(60, { ...base, kind: 'linear' })).toBeCloseTo(1e-3 - 0.9e-3 * 0.5, 12);
    expect(lrAt(100, { ...base, kind: 'constant' })).toBe(1e-3);
    // wsd: decay over the last 20% (22 steps): stable until step 88, then linear to 1e-4.
    expect(lrAt(87, { ...base, kind: 'wsd' })).toBe(1e-3);
    expect(lrAt(99, { ...base, kind: 'wsd' })).toBeCloseTo(1e-3 - 0.9e-3 * (11 / 22), 12);
    expect(lrAt(0, { ...base, warmup: 0, kind: 'constant' })).toBe(1e-3);
  });
  it('rejects bad settings', () => {
    expect(() => validateSchedule({ ...base, kind: 'cosine', warmup: 200 })).toThrow(/warmup must be an integer in \[0, steps\], got 200/);
    expect(() => validateSchedule({ ...base, kind: 'cosine', lr: 0, minLrRatio: 2 })).toThrow(/lr must be positive, got 0; minLrRatio must be in \[0, 1\], got 2/);
  });
});

describe('Adam', () => {
  const run = (kind: 'adam' | 'adamw', weightDecay: number) => {
    const p = tf.variable(tf.tensor2d([[1, -2]]));
    const opt = new Adam(new Map([['w', p]]), { kind, weightDecay });
    opt.apply(new Map([['w', tf.tensor2d([[0.5, 0.5]])]]), 0.1);
    const first = Array.from(p.dataSync());
    opt.apply(new Map([['w', tf.tensor2d([[0.5, -1]])]]), 0.1);
    const second = Array.from(p.dataSync());
    opt.dispose();
    p.dispose();
    return { first, second };
  };
  it('matches a hand computation with bias correction', () => {
    // Step 1: m = 0.05, v = 0.00025, m_hat = 0.5, v_hat = 0.25 -> update 1 (sign of g).
    const { first, second } = run('adam', 0);
    expect(first[0]).toBeCloseTo(1 - 0.1, 6);
    expect(first[1]).toBeCloseTo(-2 - 0.1, 6);
    // Step 2 for w0 (g = 0.5 again): still 1 per step. For w1 (g = 0.5 then -1):
    // m = 0.9*0.05 - 0.1 = -0.055, m_hat = -0.055 / 0.19; v = 0.999*0.00025 + 0.001, v_hat = v / (1 - 0.999^2).
    const m = -0.055 / 0.19;
    const v = (0.999 * 0.00025 + 0.001) / (1 - 0.999 ** 2);
    expect(second[0]).toBeCloseTo(0.8, 6);
    expect(second[1]).toBeCloseTo(-2.1 - 0.1 * (m / (Math.sqrt(v) + 1e-8)), 6);
  });
  it('decouples weight decay in AdamW and couples it in Adam', () => {
    // AdamW: p -= lr * (adam_update + wd * p): step 1 = 1 - 0.1 * (1 + 0.5 * 1).
    expect(run('adamw', 0.5).first[0]).toBeCloseTo(1 - 0.1 * 1.5, 6);
    // Adam (L2): g' = g + wd * p = 1 for w0 -> still a unit step on the first update.
    expect(run('adam', 0.5).first[0]).toBeCloseTo(0.9, 6);
  });
  it('does not decay vectors (norm weights) by default', () => {
    const norm = tf.variable(tf.tensor1d([1, 1]));
    const opt = new Adam(new Map([['model.norm.weight', norm]]), { kind: 'adamw', weightDecay: 0.5 });
    opt.apply(new Map([['model.norm.weight', tf.tensor1d([0.5, 0.5])]]), 0.1);
    expect(norm.dataSync()[0]).toBeCloseTo(0.9, 6);
    opt.dispose();
    norm.dispose();
  });
});
