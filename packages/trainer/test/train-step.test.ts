import { initBackend, TensorCountWatch } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { Adam, Trainer, trainStep, TrainingDivergedError } from '../src/index.js';
import { loader, sequences, tinyModel } from './helpers.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

describe('trainStep', () => {
  it('takes the same steps as the Trainer, bit for bit, and leaves no tensor behind', async () => {
    const set = sequences();
    const viaTrainer = tinyModel('lns', 3);
    const trainer = new Trainer({ model: viaTrainer, train: loader(set, 4) }, { steps: 4, lr: 2e-3, schedule: 'constant', gradClip: 0.5, accumulation: 2 });
    const expected: Array<{ loss: number; gradNorm: number; clipped: boolean }> = [];
    trainer.on('step', (e) => expected.push({ loss: e.loss, gradNorm: e.gradNorm, clipped: e.clipped }));
    await trainer.run();

    const model = tinyModel('lns', 3);
    const optimizer = new Adam(model.params, { kind: 'adam' });
    const batches = loader(set, 4);
    const watch = new TensorCountWatch('trainStep');
    const got: Array<{ loss: number; gradNorm: number; clipped: boolean }> = [];
    for (let i = 0; i < 4; i++) {
      const r = trainStep(model, optimizer, [batches.next(), batches.next()], { lr: 2e-3, gradClip: 0.5 });
      got.push({ loss: r.loss, gradNorm: r.gradNorm, clipped: r.clipped });
      watch.check(i);
    }
    expect(got).toEqual(expected);
    expect(got.some((r) => r.clipped)).toBe(true);
    for (const [name, v] of viaTrainer.params) expect(Array.from(model.param(name).dataSync())).toEqual(Array.from(v.dataSync()));
    trainer.dispose();
    optimizer.dispose();
    [viaTrainer, model].forEach((m) => m.dispose());
  });

  it('refuses a non-finite step without touching the parameters', () => {
    const model = tinyModel('pre', 4);
    const optimizer = new Adam(model.params, { kind: 'adamw' });
    const name = 'model.embed_tokens.weight';
    const before = Array.from(model.param(name).dataSync());
    model.param(name).assign(model.param(name).mul(Infinity));
    const poisoned = Array.from(model.param(name).dataSync());
    expect(() => trainStep(model, optimizer, loader(sequences(), 2).next(), { lr: 1e-3 })).toThrow(TrainingDivergedError);
    expect(Array.from(model.param(name).dataSync())).toEqual(poisoned);
    expect(optimizer.step).toBe(0);
    expect(before).not.toEqual(poisoned);
    optimizer.dispose();
    model.dispose();
  });
});
