import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, TensorCountWatch } from '@deepen/backend';
import { checkpointName, readMetrics, type StepRecord } from '@deepen/core';
import { BatchIterator } from '@deepen/data';
import { beforeAll, describe, expect, it } from 'vitest';
import { listTrainingCheckpoints, loadTrainingState, Trainer, TrainingDivergedError, type DiagnosticsEvent, type ErrorEvent, type EvalEvent } from '../src/index.js';
import { loader, sequences, tinyModel } from './helpers.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

const tmp = () => mkdtempSync(join(tmpdir(), 'deepen-train-'));
const base = { lr: 3e-3, warmup: 2, schedule: 'cosine' as const };

describe('Trainer', () => {
  it('learns, evaluates, diagnoses every layer, and keeps the tensor count flat', async () => {
    const model = tinyModel('lns');
    const trainer = new Trainer({ model, train: loader(sequences(), 8), validation: sequences('packed', 20, 9) }, { ...base, lr: 1e-2, steps: 40, evalEvery: 20, diagnosticsEvery: 10 });
    const losses: number[] = [];
    const evals: EvalEvent[] = [];
    const diagnostics: DiagnosticsEvent[] = [];
    const watch = new TensorCountWatch('training step');
    trainer.on('step', (e) => {
      losses.push(e.loss);
      if (e.step > 1 && e.step % 10 !== 0 && e.step % 20 !== 0) watch.check(e.step); // diagnostic and eval steps run extra forwards, but must not leak either
    });
    trainer.on('eval', (e) => evals.push(e));
    trainer.on('diagnostics', (e) => diagnostics.push(e));
    const before = tf.memory().numTensors;
    const result = await trainer.run();
    expect(tf.memory().numTensors).toBe(before);
    expect(result.reason).toBe('completed');
    expect(losses).toHaveLength(40);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.6);
    expect(evals.map((e) => e.step)).toEqual([20, 40]);
    expect(evals[1]!.perplexity).toBeCloseTo(Math.exp(evals[1]!.loss), 6);
    expect(evals[1]!.loss).toBeLessThan(evals[0]!.loss);
    expect(diagnostics.map((d) => d.step)).toEqual([10, 20, 30, 40]);
    for (const d of diagnostics) {
      expect(d.layers.map((l) => l.layer)).toEqual([0, 1, 2]);
      for (const l of d.layers) {
        expect(l.outputVariance).toBeGreaterThan(0);
        expect(l.gradNorm).toBeGreaterThan(0);
        expect(l.updateRatio).toBeGreaterThan(0);
      }
    }
    trainer.dispose();
    model.dispose();
  });

  it('accumulates k micro-batches into exactly the gradient of one k-times-larger batch (with masks)', async () => {
    const set = sequences('document', 24);
    const a = tinyModel('pre', 3);
    const b = tinyModel('pre', 3);
    const one = new Trainer({ model: a, train: loader(set, 8, { shuffle: false }) }, { ...base, steps: 2, accumulation: 1 });
    const four = new Trainer({ model: b, train: loader(set, 2, { shuffle: false }) }, { ...base, steps: 2, accumulation: 4 });
    const lossA: number[] = [];
    const lossB: number[] = [];
    one.on('step', (e) => lossA.push(e.loss));
    four.on('step', (e) => lossB.push(e.loss));
    await one.run();
    await four.run();
    lossA.forEach((l, i) => expect(l).toBeCloseTo(lossB[i]!, 5));
    let maxDiff = 0;
    for (const [name, v] of a.params) {
      const x = v.dataSync();
      const y = b.param(name).dataSync();
      for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i]! - y[i]!));
    }
    expect(maxDiff).toBeLessThan(2e-6);
    [one, four].forEach((t) => t.dispose());
    [a, b].forEach((m) => m.dispose());
  });

  it('clips the global gradient norm (0 turns clipping off)', async () => {
    const model = tinyModel('pre');
    const trainer = new Trainer({ model, train: loader(sequences(), 4) }, { ...base, warmup: 0, steps: 1, gradClip: 1e-3 });
    let event: { gradNorm: number; clipped: boolean } | undefined;
    trainer.on('step', (e) => (event = e));
    await trainer.run();
    expect(event!.gradNorm).toBeGreaterThan(1e-3);
    expect(event!.clipped).toBe(true);
    // After one step the first moment is (1 - beta1) * clipped gradient, whose norm is the clip value.
    const mNorm = Math.sqrt([...trainer.optimizer.stateTensors()].filter(([n]) => n.startsWith('m.')).reduce((a, [, t]) => a + (tf.tidy(() => tf.sum(tf.square(t)).dataSync()[0]) as number), 0));
    expect(mNorm).toBeCloseTo(0.1 * 1e-3, 7);
    trainer.dispose();
    model.dispose();
  });

  it('resumes from a checkpoint with the same loss curve, bit for bit', async () => {
    const out = tmp();
    const set = sequences();
    const reference = tinyModel('lns', 7);
    const full = new Trainer({ model: reference, train: loader(set, 4) }, { ...base, steps: 6 });
    const expected: number[] = [];
    full.on('step', (e) => expected.push(e.loss));
    await full.run();

    const first = tinyModel('lns', 7);
    const part = new Trainer({ model: first, train: loader(set, 4) }, { ...base, steps: 6, saveEvery: 3, outDir: out });
    part.on('step', (e) => {
      if (e.step === 3) part.requestStop();
    });
    const stopped = await part.run();
    expect(stopped).toMatchObject({ reason: 'interrupted', step: 3 });
    const resumedState = loadTrainingState(out);
    expect(resumedState.state.step).toBe(3);
    const resumed = new Trainer(
      { model: resumedState.model, train: new BatchIterator(set, 4, { state: resumedState.state.loader }), resume: resumedState },
      { ...base, steps: 6, outDir: out },
    );
    const after: number[] = [];
    resumed.on('step', (e) => after.push(e.loss));
    await resumed.run();
    expect(after).toEqual(expected.slice(3));
    // The history before the checkpoint comes back from the run's metrics.jsonl, which holds each step once.
    expect(resumed.history.steps.map((s) => s.loss)).toEqual(expected);
    expect(readMetrics(out).filter((e) => e.event === 'step').map((e) => (e as StepRecord).loss)).toEqual(expected);
    for (const [name, v] of reference.params) expect(Array.from(resumedState.model.param(name).dataSync())).toEqual(Array.from(v.dataSync()));
    [full, part, resumed].forEach((t) => t.dispose());
    [reference, first, resumedState.model].forEach((m) => m.dispose());
  });

  it('stops after the step requestStop names, and saves that step', async () => {
    const out = tmp();
    const model = tinyModel('lns');
    const trainer = new Trainer({ model, train: loader(sequences(), 4) }, { ...base, steps: 50, saveEvery: 2, outDir: out });
    // As a signal handler does: the request arrives between steps, at the loop's next await.
    let promised: number | null = null;
    trainer.on('step', (e) => {
      if (e.step === 2) setImmediate(() => (promised = trainer.requestStop()));
    });
    const stopped = await trainer.run();
    expect(promised).toBe(2);
    expect(stopped).toMatchObject({ reason: 'interrupted', step: 2, checkpoint: join(out, 'checkpoints', checkpointName(2)) });
    expect(JSON.parse(readFileSync(join(stopped.checkpoint!, 'trainer_state.json'), 'utf8')).step).toBe(2);
    expect(listTrainingCheckpoints(out).map((d) => d.split('/').at(-1))).toEqual(['step-0000002']);
    trainer.dispose();
    model.dispose();
  });

  it('resumed with no steps left, reports the checkpoint it resumed from and the last evaluation', async () => {
    const out = tmp();
    const set = sequences();
    const model = tinyModel('lns');
    const done = new Trainer({ model, train: loader(set, 4), validation: sequences('packed', 20, 9) }, { ...base, steps: 3, outDir: out });
    const finished = await done.run();
    expect(finished.checkpoint).toBe(join(out, 'checkpoints', checkpointName(3)));
    const state = loadTrainingState(out);
    const again = new Trainer({ model: state.model, train: new BatchIterator(set, 4, { state: state.state.loader }), validation: sequences('packed', 20, 9), resume: state }, { ...base, steps: 3, outDir: out });
    const steps: number[] = [];
    again.on('step', (e) => steps.push(e.step));
    const result = await again.run();
    expect(steps).toEqual([]);
    expect(result).toEqual({ reason: 'completed', step: 3, eval: finished.eval, checkpoint: finished.checkpoint });
    [done, again].forEach((t) => t.dispose());
    [model, state.model].forEach((m) => m.dispose());
  });

  it('stops on a non-finite loss, names the step and layer, and keeps the last good checkpoint', async () => {
    const out = tmp();
    const model = tinyModel('pre');
    const trainer = new Trainer({ model, train: loader(sequences(), 4) }, { ...base, steps: 10, saveEvery: 2, outDir: out });
    const errors: ErrorEvent[] = [];
    trainer.on('error', (e) => errors.push(e));
    // Corrupt layer 1 right after the step-2 checkpoint is written: step 3 must fail and leave it alone.
    trainer.on('checkpoint', (e) => {
      if (e.step === 2) model.param('model.layers.1.self_attn.q_proj.weight').assign(tf.fill([16, 16], NaN));
    });
    const failure = await trainer.run().catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(TrainingDivergedError);
    expect((failure as Error).message).toBe(
      'training diverged at step 3: loss is NaN (layer 1 is the first whose output is not finite); no update was applied and the last good checkpoint is kept',
    );
    expect(errors).toEqual([{ step: 3, layer: 1, message: (failure as Error).message }]);
    expect(listTrainingCheckpoints(out).map((d) => d.split('/').at(-1))).toEqual(['step-0000002']);
    const good = loadTrainingState(out);
    expect(Number.isFinite(good.model.param('model.layers.1.self_attn.q_proj.weight').dataSync()[0])).toBe(true);
    trainer.dispose();
    model.dispose();
    good.model.dispose();
  });

  it('calls beforeCheckpoint after the events of a step and before its checkpoint exists', async () => {
    const out = tmp();
    const model = tinyModel('lns');
    const seen: string[] = [];
    const trainer = new Trainer(
      { model, train: loader(sequences(), 4), validation: sequences('packed', 20, 9) },
      { ...base, steps: 4, saveEvery: 2, evalEvery: 2, outDir: out, beforeCheckpoint: (step) => seen.push(`before ${step} ${existsSync(join(out, 'checkpoints', checkpointName(step)))}`) },
    );
    trainer.on('step', (e) => seen.push(`step ${e.step}`));
    trainer.on('eval', (e) => seen.push(`eval ${e.step}`));
    trainer.on('checkpoint', (e) => seen.push(`checkpoint ${e.step}`));
    await trainer.run();
    expect(seen).toEqual(['step 1', 'step 2', 'eval 2', 'before 2 false', 'checkpoint 2', 'step 3', 'step 4', 'eval 4', 'before 4 false', 'checkpoint 4']);
    trainer.dispose();
    model.dispose();
  });

  it('keeps only the newest checkpoints, each a complete folder', async () => {
    const out = tmp();
    const model = tinyModel('lns');
    const trainer = new Trainer({ model, train: loader(sequences(), 4) }, { ...base, steps: 5, saveEvery: 1, keepLast: 2, outDir: out, files: { 'tokenizer.json': '{}' } });
    await trainer.run();
    const kept = listTrainingCheckpoints(out);
    expect(kept.map((d) => d.split('/').at(-1))).toEqual(['step-0000004', 'step-0000005']);
    expect(readdirSync(kept[1]!).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'trainer_state.json']);
    expect(readdirSync(join(out, 'checkpoints')).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(existsSync(join(out, 'checkpoints', 'step-0000003'))).toBe(false);
    trainer.dispose();
    model.dispose();
  });
});
