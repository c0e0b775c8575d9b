import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  CHECKPOINTS_DIR,
  checkpointName,
  MetricsLog,
  OPTIMIZER_FILE,
  readMetrics,
  RUN_FILE,
  serializeSafetensors,
  TRAINER_STATE_FILE,
  trainerStateJson,
  writeRunRecord,
} from '@deepen/core';
import { sequentialBatches, type Batch, type BatchIterator, type SequenceSource } from '@deepen/data';
import { batchTensors, evaluateLoss } from './evaluate.js';
import { clipGradients, computeGradients, nonFinite, squaredNorms, TrainingDivergedError, type Gradients } from './step.js';
import { saveCheckpoint, trainingFlopsPerToken, type LlamaModel } from '@deepen/models';
import { pruneCheckpoints, type TrainerState } from './checkpoints.js';
import { Emitter, type EvalEvent, type LayerDiagnostics, type StepEvent, type TrainerEvents } from './events.js';
import { Adam } from './optimizer.js';
import { lrAt, validateSchedule, type ScheduleKind } from './schedule.js';

export interface TrainOptions {
  /** Optimizer steps for the whole run (a resumed run continues up to this). */
  steps: number;
  /** Micro-batches per optimizer step (gradient accumulation). Default 1. */
  accumulation?: number;
  lr: number;
  schedule?: ScheduleKind;
  warmup?: number;
  minLrRatio?: number;
  /** 'adam' (default, as in the paper) or 'adamw'. */
  optimizer?: 'adam' | 'adamw';
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Global-norm gradient clipping; 0 (default, as in the paper) turns it off. */
  gradClip?: number;
  /** Evaluate every N steps (0: only at the end) on up to `evalTokens` validation tokens. */
  evalEvery?: number;
  evalTokens?: number;
  evalBatchSize?: number;
  /** Depth diagnostics every N steps (0: never). */
  diagnosticsEvery?: number;
  /**
   * The run folder: checkpoints go to `<outDir>/checkpoints/step-N`, and the trainer keeps the
   * run's records there (run.json when the run starts, every event in metrics.jsonl, made
   * durable before each checkpoint is published). null writes nothing.
   */
  outDir?: string | null;
  /** Save every N steps (0: only at the end); keep the newest `keepLast`. */
  saveEvery?: number;
  keepLast?: number;
  /** Extra files for every checkpoint (e.g. tokenizer.json). */
  files?: Record<string, string>;
  /**
   * Called before each checkpoint is written, once every event up to its step has been
   * emitted: a caller that keeps its own record of the events (a service's job journal) makes
   * that record durable here, so that no checkpoint a resume starts from is ahead of it.
   */
  beforeCheckpoint?: (step: number) => void;
  /** Stored in run.json and each checkpoint's trainer_state.json (e.g. the CLI flags). */
  runConfig?: Record<string, unknown>;
  /** The engine report (@deepen/backend's initBackend result), stored in run.json. */
  engine?: object | null;
}

export interface TrainInputs {
  model: LlamaModel;
  train: BatchIterator;
  validation?: SequenceSource | null;
  /** To continue a run: the state and optimizer tensors from loadTrainingState. */
  resume?: { state: TrainerState; optimizerTensors: Map<string, { shape: number[]; values: Float32Array }>; dir: string };
}

const layerOf = (name: string): number | null => {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
};

/**
 * The pretraining loop. Everything a consumer needs (progress, logs, reports, a service's
 * job events) comes from its events; it never prints.
 */
export class Trainer extends Emitter<TrainerEvents> {
  readonly optimizer: Adam;
  /** The run's steps and evaluations so far (on resume, those before the checkpoint come back from metrics.jsonl). */
  readonly history: { steps: StepEvent[]; evals: EvalEvent[] } = { steps: [], evals: [] };
  private step = 0;
  private stopRequested = false;
  /** The checkpoint a resumed run started from: its latest checkpoint until it writes one. */
  private readonly resumeDir: string | null = null;
  private readonly flopsPerToken: number;
  private readonly opts: Required<Omit<TrainOptions, 'outDir' | 'files' | 'runConfig' | 'engine' | 'beforeCheckpoint'>> & Pick<TrainOptions, 'outDir' | 'files' | 'runConfig' | 'engine' | 'beforeCheckpoint'>;
  private readonly model: LlamaModel;
  private readonly train: BatchIterator;
  private readonly validation: SequenceSource | null;
  private diagnosticBatch: Batch | null = null;
  private readonly resumeStep: number | null;
  private lastEval: EvalEvent | null = null;
  private metrics: MetricsLog | null = null;

  constructor(inputs: TrainInputs, options: TrainOptions) {
    super();
    this.opts = {
      accumulation: 1,
      schedule: 'cosine',
      warmup: 0,
      minLrRatio: 0.1,
      optimizer: 'adam',
      weightDecay: 0,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      gradClip: 0,
      evalEvery: 0,
      evalTokens: 32_768,
      evalBatchSize: 8,
      diagnosticsEvery: 0,
      saveEvery: 0,
      keepLast: 3,
      ...options,
    };
    validateSchedule({ kind: this.opts.schedule, lr: this.opts.lr, totalSteps: this.opts.steps, warmup: this.opts.warmup, minLrRatio: this.opts.minLrRatio });
    if (!(Number.isInteger(this.opts.accumulation) && this.opts.accumulation >= 1)) throw new Error(`accumulation must be a positive integer, got ${this.opts.accumulation}`);
    if (!(this.opts.gradClip >= 0)) throw new Error(`gradClip must be >= 0, got ${this.opts.gradClip}`);
    this.model = inputs.model;
    this.train = inputs.train;
    this.validation = inputs.validation ?? null;
    this.flopsPerToken = trainingFlopsPerToken(this.model.config, this.train.seqLen);
    this.optimizer = new Adam(this.model.params, {
      kind: this.opts.optimizer,
      beta1: this.opts.beta1,
      beta2: this.opts.beta2,
      eps: this.opts.eps,
      weightDecay: this.opts.weightDecay,
    });
    if (inputs.resume) {
      const { state, optimizerTensors, dir } = inputs.resume;
      if (state.step > this.opts.steps) throw new Error(`${dir}: checkpoint is at step ${state.step}, beyond the run's ${this.opts.steps} steps`);
      this.optimizer.loadState(state.optimizer.step, optimizerTensors, dir);
      this.step = state.step;
      this.lastEval = state.lastEval;
      this.resumeDir = dir;
      // The history up to the checkpoint is the run's metrics.jsonl (the checkpoint keeps only the last evaluation).
      if (this.opts.outDir) {
        for (const e of readMetrics(this.opts.outDir, { upToStep: state.step })) {
          if (e.event === 'step') this.history.steps.push(withoutTag(e));
          else if (e.event === 'eval') this.history.evals.push(withoutTag(e));
        }
      }
    }
    this.resumeStep = inputs.resume ? inputs.resume.state.step : null;
  }

  /** Every event also goes to the run's metrics.jsonl when the trainer keeps records. */
  protected override emit<K extends keyof TrainerEvents>(event: K, payload: TrainerEvents[K]): void {
    this.metrics?.append(event, payload);
    super.emit(event, payload);
  }

  /** Opens the run's records: run.json for a new run, metrics.jsonl (cut back to the resumed step). */
  private openRecords(): void {
    const dir = this.opts.outDir;
    if (!dir || this.metrics) return;
    if (this.resumeStep === null && !existsSync(join(dir, RUN_FILE))) {
      const count = this.model.parameterCount();
      writeRunRecord(dir, {
        settings: this.opts.runConfig ?? {},
        engine: (this.opts.engine as Record<string, unknown> | null | undefined) ?? null,
        parameters: { total: count.total, nonEmbedding: count.nonEmbedding },
        started: new Date().toISOString(),
      });
    }
    this.metrics = MetricsLog.open(dir, { resumeStep: this.resumeStep });
  }

  private closeRecords(): void {
    this.metrics?.close();
    this.metrics = null;
  }

  /** Optimizer steps completed. */
  get currentStep(): number {
    return this.step;
  }

  /**
   * Asks the loop to stop (Ctrl-C): it starts no further step, saves a checkpoint and finishes.
   * Steps run synchronously, so no step is ever half done when this is called: the checkpoint
   * holds the steps completed so far. Returns that step, the one the checkpoint will hold.
   */
  requestStop(): number {
    this.stopRequested = true;
    return this.step;
  }

  /** The next `accumulation` micro-batches and the gradients of their token-weighted mean loss. */
  private accumulate(): Gradients & { batches: Batch[] } {
    const batches = Array.from({ length: this.opts.accumulation }, () => this.train.next());
    return { ...computeGradients(this.model, batches), batches };
  }

  /** The first block whose output stops being finite on this batch (null if none does). */
  private firstNonFiniteLayer(batch: Batch): number | null {
    let layers: number[] = [];
    const finite = tf.tidy(() => {
      const { inputs } = batchTensors(batch);
      const { hidden } = this.model.forward(inputs, { captureHidden: true });
      layers = hidden!.layers;
      return tf.stack(hidden!.outputs.map((o) => tf.all(tf.isFinite(o)))).dataSync();
    });
    const bad = Array.from(finite).findIndex((f) => !f);
    return bad < 0 ? null : (layers[bad] as number);
  }

  /** Mean loss, perplexity and token accuracy on up to evalTokens validation tokens (same sequences every time). */
  evaluate(): EvalEvent | null {
    if (!this.validation || this.validation.count === 0) return null;
    return { step: this.step, ...evaluateLoss(this.model, this.validation, { maxTokens: this.opts.evalTokens, batchSize: this.opts.evalBatchSize }) };
  }

  private residualVariances(): number[] {
    this.diagnosticBatch ??= this.validation && this.validation.count > 0 ? [...sequentialBatches(this.validation, 2, 2)][0]! : this.train.next();
    return tf.tidy(() => {
      const { inputs } = batchTensors(this.diagnosticBatch!);
      const { hidden } = this.model.forward(inputs, { captureHidden: true });
      return Array.from(tf.stack(hidden!.outputs.map((o) => tf.moments(o).variance)).dataSync());
    });
  }

  private async writeCheckpoint(): Promise<string | null> {
    if (!this.opts.outDir) return null;
    const dir = join(this.opts.outDir, CHECKPOINTS_DIR, checkpointName(this.step));
    const state: TrainerState = {
      format: 2,
      step: this.step,
      loader: this.train.state(),
      optimizer: { kind: this.opts.optimizer, step: this.optimizer.step },
      run: this.opts.runConfig ?? {},
      lastEval: this.lastEval,
    };
    const moments = [...this.optimizer.stateTensors()].map(([name, v]) => {
      const values = v.dataSync() as Float32Array;
      return { name, dtype: 'F32' as const, shape: v.shape, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
    });
    // Every event up to this step is on disk before the checkpoint that a resume would start from exists.
    this.metrics?.sync();
    this.opts.beforeCheckpoint?.(this.step);
    await saveCheckpoint(this.model, dir, {
      files: {
        ...(this.opts.files ?? {}),
        [TRAINER_STATE_FILE]: trainerStateJson(state),
        [OPTIMIZER_FILE]: serializeSafetensors(moments, { format: 'pt' }),
      },
    });
    pruneCheckpoints(this.opts.outDir, this.opts.keepLast);
    this.emit('checkpoint', { step: this.step, dir });
    return dir;
  }

  /** Trains until `steps` (or a stop request), then evaluates and saves. */
  async run(): Promise<{ reason: 'completed' | 'interrupted'; step: number; eval: EvalEvent | null; checkpoint: string | null }> {
    this.openRecords();
    try {
      return await this.loop();
    } finally {
      this.closeRecords();
    }
  }

  private async loop(): Promise<{ reason: 'completed' | 'interrupted'; step: number; eval: EvalEvent | null; checkpoint: string | null }> {
    const started = performance.now();
    let lastEval: EvalEvent | null = this.lastEval;
    // A resumed run with nothing left to do still has a checkpoint: the one it resumed from.
    let lastCheckpoint: string | null = this.resumeDir;
    const o = this.opts;
    while (this.step < o.steps) {
      if (this.stopRequested) {
        lastCheckpoint = await this.writeCheckpoint();
        this.emit('done', { reason: 'interrupted', step: this.step, eval: lastEval, checkpoint: lastCheckpoint });
        return { reason: 'interrupted', step: this.step, eval: lastEval, checkpoint: lastCheckpoint };
      }
      const stepStart = performance.now();
      const lr = lrAt(this.step, { kind: o.schedule, lr: o.lr, totalSteps: o.steps, warmup: o.warmup, minLrRatio: o.minLrRatio });
      const { loss, tokens, grads, batches } = this.accumulate();
      const names = [...grads.keys()];
      const squares = squaredNorms(grads);
      const bad = nonFinite(loss, grads, squares);
      if (bad) {
        tf.dispose([...grads.values()]);
        const layer = this.firstNonFiniteLayer(batches[0]!) ?? (bad.param === null ? null : layerOf(bad.param));
        const { what } = bad;
        const where = layer === null ? '' : ` (layer ${layer} is the first whose output is not finite)`;
        const message = `training diverged at step ${this.step + 1}: ${what}${where}; no update was applied${o.outDir ? ' and the last good checkpoint is kept' : ''}`;
        this.emit('error', { step: this.step + 1, message, layer });
        throw new TrainingDivergedError(message, this.step + 1, layer);
      }
      const gradNorm = Math.sqrt(squares.reduce((a, b) => a + b, 0));
      const clipped = clipGradients(grads, gradNorm, o.gradClip);
      const diagnose = o.diagnosticsEvery > 0 && (this.step + 1) % o.diagnosticsEvery === 0;
      const updates = this.optimizer.apply(grads, lr, diagnose);
      tf.dispose([...grads.values()]);
      this.step += 1;

      const seconds = (performance.now() - stepStart) / 1000;
      const event: StepEvent = {
        step: this.step,
        totalSteps: o.steps,
        loss,
        lr,
        gradNorm,
        clipped,
        tokens,
        tokensPerSecond: tokens / seconds,
        flopsPerSecond: (tokens * this.flopsPerToken) / seconds,
        elapsed: (performance.now() - started) / 1000,
      };
      this.history.steps.push(event);
      this.emit('step', event);

      if (diagnose && updates) {
        const variances = this.residualVariances();
        const layers: LayerDiagnostics[] = variances.map((outputVariance, layer) => {
          let g = 0;
          let u = 0;
          let w = 0;
          names.forEach((n, i) => {
            if (layerOf(n) !== layer) return;
            g += squares[i] as number;
            u += updates.update.get(n)! ** 2;
            w += updates.weight.get(n)! ** 2;
          });
          return { layer, outputVariance, gradNorm: Math.sqrt(g), updateRatio: w > 0 ? Math.sqrt(u / w) : 0 };
        });
        this.emit('diagnostics', { step: this.step, layers });
      }
      const last = this.step === o.steps;
      if ((o.evalEvery > 0 && this.step % o.evalEvery === 0) || last) {
        const result = this.evaluate();
        if (result) {
          lastEval = result;
          this.lastEval = result;
          this.history.evals.push(result);
          this.emit('eval', result);
        }
      }
      if ((o.saveEvery > 0 && this.step % o.saveEvery === 0) || last) lastCheckpoint = await this.writeCheckpoint();
      // Let signal handlers and other callbacks run between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.emit('done', { reason: 'completed', step: this.step, eval: lastEval, checkpoint: lastCheckpoint });
    return { reason: 'completed', step: this.step, eval: lastEval, checkpoint: lastCheckpoint };
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}

/** A metrics.jsonl line as the event it records (without its name and time). */
function withoutTag<T extends { event: string; time: string }>(line: T): Omit<T, 'event' | 'time'> {
  const { event: _event, time: _time, ...rest } = line;
  return rest;
}
