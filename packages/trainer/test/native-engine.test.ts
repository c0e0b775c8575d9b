/**
 * Training on the native engine (fused kernels, fused Adam) follows the pure-JS cpu engine's
 * loss curve within float32 tolerance, keeps the tensor count flat, and resumes exactly.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, nativeEngineStatus, TensorCountWatch } from '@deepen/backend';
import { BatchIterator } from '@deepen/data';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTrainingState, Trainer } from '../src/index.js';
import { loader, sequences, tinyModel } from './helpers.js';

// Skipped only where this machine cannot build the native engine by design (no compiler or
// OpenBLAS); a broken build runs these and fails.
const status = nativeEngineStatus();
const skip = !status.available && status.expected;
const reason = status.available ? '' : status.reason;
const options = { lr: 1e-2, warmup: 2, schedule: 'cosine' as const, steps: 25, evalEvery: 25, diagnosticsEvery: 5, weightDecay: 0.01, optimizer: 'adamw' as const };

async function lossCurve(engine: 'deepen-native' | 'cpu'): Promise<{ losses: number[]; evalLoss: number }> {
  await tf.setBackend(engine);
  const model = tinyModel('lns', 4);
  const trainer = new Trainer({ model, train: loader(sequences(), 8), validation: sequences('packed', 20, 9) }, options);
  const losses: number[] = [];
  const watch = new TensorCountWatch(`training on ${engine}`);
  trainer.on('step', (e) => {
    losses.push(e.loss);
    if (e.step > 1 && e.step % 5 !== 0) watch.check(e.step);
  });
  const result = await trainer.run();
  trainer.dispose();
  model.dispose();
  return { losses, evalLoss: result.eval!.loss };
}

describe.skipIf(skip)(`training on the native engine${reason ? ` (skipped: ${reason})` : ''}`, () => {
  beforeAll(async () => {
    await initBackend({ engine: 'cpu' });
    await initBackend({ engine: 'native' });
  });

  it('gives the cpu engine loss curve within float32 tolerance, with a flat tensor count', async () => {
    const onNative = await lossCurve('deepen-native');
    const onCpu = await lossCurve('cpu');
    expect(onNative.losses.at(-1)!).toBeLessThan(onNative.losses[0]! * 0.7);
    onCpu.losses.forEach((loss, i) => expect(Math.abs(loss - onNative.losses[i]!), `step ${i + 1}`).toBeLessThan(2e-3 * loss));
    expect(Math.abs(onNative.evalLoss - onCpu.evalLoss)).toBeLessThan(2e-3 * onCpu.evalLoss);
  });

  it('resumes from a checkpoint with the same loss curve, bit for bit', async () => {
    await tf.setBackend('deepen-native');
    const out = mkdtempSync(join(tmpdir(), 'deepen-native-resume-'));
    const set = sequences();
    const reference = tinyModel('lns', 7);
    const full = new Trainer({ model: reference, train: loader(set, 4) }, { ...options, steps: 6, diagnosticsEvery: 0 });
    const expected: number[] = [];
    full.on('step', (e) => expected.push(e.loss));
    await full.run();
    const first = tinyModel('lns', 7);
    const part = new Trainer({ model: first, train: loader(set, 4) }, { ...options, steps: 6, diagnosticsEvery: 0, saveEvery: 3, outDir: out });
    part.on('step', (e) => {
      if (e.step === 3) part.requestStop();
    });
    await part.run();
    const state = loadTrainingState(out);
    const resumed = new Trainer({ model: state.model, train: new BatchIterator(set, 4, { state: state.state.loader }), resume: state }, { ...options, steps: 6, diagnosticsEvery: 0 });
    const after: number[] = [];
    resumed.on('step', (e) => after.push(e.loss));
    await resumed.run();
    expect(after).toEqual(expected.slice(3));
    [full, part, resumed].forEach((t) => t.dispose());
    [reference, first, state.model].forEach((m) => m.dispose());
  });
});
