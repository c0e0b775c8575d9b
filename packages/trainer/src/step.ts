import * as tf from '@tensorflow/tfjs';
import type { Batch } from '@deepen/data';
import type { LlamaModel } from '@deepen/models';
import { batchTensors, countedTokens } from './evaluate.js';
import type { Adam } from './optimizer.js';

/** The run stopped because the loss or a gradient stopped being finite. */
export class TrainingDivergedError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly layer: number | null,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export interface Gradients {
  /** The token-weighted mean loss over the batches. */
  loss: number;
  /** Tokens whose loss counted. */
  tokens: number;
  /** One gradient per parameter, keyed by the parameter's (Hugging Face) name. The caller disposes them. */
  grads: Map<string, tf.Tensor>;
}

/**
 * Gradients of the token-weighted mean loss over `batches` (gradient accumulation): batch i's
 * mean loss is weighted by its share of counted tokens, so k micro-batches give exactly the
 * gradient of one batch k times larger, masks and padding included.
 */
export function computeGradients(model: LlamaModel, batches: readonly Batch[]): Gradients {
  const counted = batches.map((b) => countedTokens(b));
  const total = counted.reduce((a, b) => a + b, 0);
  const names = new Map([...model.params].map(([name, v]) => [v.name, name]));
  const vars = [...model.params.values()];
  const grads = new Map<string, tf.Tensor>();
  let loss = 0;
  batches.forEach((batch, i) => {
    const weight = total > 0 ? (counted[i] as number) / total : 0;
    const { value, grads: g } = tf.variableGrads(
      () =>
        tf.tidy(() => {
          const { inputs, targets, mask } = batchTensors(batch);
          return tf.mul(model.loss(inputs, { targets, mask }), weight) as tf.Scalar;
        }),
      vars,
    );
    loss += value.dataSync()[0] as number;
    value.dispose();
    // tfjs keys gradients by its variable names; deepen's optimizers and checkpoints use the parameter names.
    for (const [varName, grad] of Object.entries(g)) {
      const name = names.get(varName) as string;
      const previous = grads.get(name);
      if (previous) {
        grads.set(name, tf.add(previous, grad));
        tf.dispose([previous, grad]);
      } else grads.set(name, grad);
    }
  });
  return { loss, tokens: total, grads };
}

/** The squared L2 norm of each gradient, in the map's order (one read from the engine). */
export function squaredNorms(grads: Map<string, tf.Tensor>): number[] {
  const names = [...grads.keys()];
  return Array.from(tf.tidy(() => tf.stack(names.map((n) => tf.sum(tf.square(grads.get(n)!)))).dataSync()));
}

/**
 * What is not finite in a step, in words (its loss, else the first parameter whose gradient is
 * not), and the first parameter with a non-finite gradient (if any); null when the step is sound. `squares` are squaredNorms(grads).
 */
export function nonFinite(loss: number, grads: Map<string, tf.Tensor>, squares: number[]): { what: string; param: string | null } | null {
  const names = [...grads.keys()];
  const bad = squares.findIndex((s) => !Number.isFinite(s));
  const param = bad < 0 ? null : names[bad]!;
  if (!Number.isFinite(loss)) return { what: `loss is ${loss}`, param };
  return param === null ? null : { what: `gradient of ${param} is not finite`, param };
}

/** Scales the gradients in place so their global norm is at most `maxNorm` (as torch.nn.utils.clip_grad_norm_). */
export function clipGradients(grads: Map<string, tf.Tensor>, norm: number, maxNorm: number): boolean {
  if (!(maxNorm > 0 && norm > maxNorm)) return false;
  const scale = maxNorm / (norm + 1e-6);
  for (const [name, g] of grads) {
    grads.set(name, tf.mul(g, scale));
    g.dispose();
  }
  return true;
}

export interface TrainStepOptions {
  lr: number;
  /** Global-norm clipping; 0 (default) turns it off. */
  gradClip?: number;
}

export interface TrainStepResult {
  loss: number;
  tokens: number;
  /** The global gradient norm before clipping. */
  gradNorm: number;
  clipped: boolean;
}

/**
 * One optimizer step on one batch (or on several, accumulated): gradients of the mean loss,
 * clipping, and the optimizer's update of the model's parameters in place. A non-finite loss
 * or gradient throws TrainingDivergedError and changes nothing. Leaves no tensor behind.
 * `Trainer` runs the same steps with schedules, evaluation, diagnostics and checkpoints.
 */
export function trainStep(model: LlamaModel, optimizer: Adam, batch: Batch | readonly Batch[], options: TrainStepOptions): TrainStepResult {
  const batches = Array.isArray(batch) ? (batch as readonly Batch[]) : [batch as Batch];
  const { loss, tokens, grads } = computeGradients(model, batches);
  try {
    const squares = squaredNorms(grads);
    const bad = nonFinite(loss, grads, squares);
    if (bad) throw new TrainingDivergedError(`training diverged at step ${optimizer.step + 1}: ${bad.what}; no update was applied`, optimizer.step + 1, null);
    const gradNorm = Math.sqrt(squares.reduce((a, b) => a + b, 0));
    const clipped = clipGradients(grads, gradNorm, options.gradClip ?? 0);
    optimizer.apply(grads, options.lr);
    return { loss, tokens, gradNorm, clipped };
  } finally {
    tf.dispose([...grads.values()]);
  }
}
