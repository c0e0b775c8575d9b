import * as tf from '@tensorflow/tfjs';
import type { LlamaModel } from '@deepen/models';
import { tidyValues } from '@deepen/backend';

export interface PerplexityOptions {
  /** Tokens per window (at most the model's context). */
  window: number;
  /**
   * New tokens scored per window, at most window - 1: each window ends `stride` tokens after
   * the last scored one and reaches back `window` tokens, the earlier ones serving as context.
   * Default window - 1 (adjacent windows sharing one token of context).
   */
  stride?: number;
  batchSize?: number;
  skipLayers?: number[];
  /** Keep the loss of every token (Float32Array, NaN for the first token). */
  perToken?: boolean;
}

export interface PerplexityResult {
  loss: number;
  perplexity: number;
  /** Tokens scored (all but the first). */
  tokens: number;
  perToken?: Float32Array;
}

/**
 * Perplexity of a token stream with a sliding window: every token but the first is scored
 * exactly once, with at least `window - stride` earlier tokens as context (all of them near the
 * start). Unlike the common recipe with stride = window, no token at a window boundary goes
 * unscored. Windows are batched; work is bounded by batchSize x window.
 */
export function slidingWindowPerplexity(model: LlamaModel, tokens: ArrayLike<number>, options: PerplexityOptions): PerplexityResult {
  const window = options.window;
  const stride = options.stride ?? window - 1;
  if (!(Number.isInteger(window) && window >= 2 && window <= model.config.max_position_embeddings)) {
    throw new Error(`window must be an integer in [2, ${model.config.max_position_embeddings}], got ${window}`);
  }
  if (!(Number.isInteger(stride) && stride >= 1 && stride < window)) throw new Error(`stride must be an integer in [1, window - 1], got ${stride}`);
  const n = tokens.length;
  const perToken = options.perToken ? new Float32Array(n).fill(NaN) : undefined;
  // Each window covers tokens [begin, end) and scores the targets [scoredFrom, end).
  const windows: Array<{ begin: number; end: number; scoredFrom: number }> = [];
  for (let scoredFrom = 1; scoredFrom < n; scoredFrom += stride) {
    const end = Math.min(scoredFrom + stride, n);
    windows.push({ begin: Math.max(0, end - window), end, scoredFrom });
  }
  const batchSize = options.batchSize ?? 8;
  let sum = 0;
  let count = 0;
  for (let i = 0; i < windows.length; i += batchSize) {
    const group = windows.slice(i, i + batchSize);
    const T = Math.max(...group.map((w) => w.end - w.begin)) - 1;
    const inputs = new Int32Array(group.length * T);
    const targets = new Int32Array(group.length * T).fill(-100);
    group.forEach((w, row) => {
      for (let t = 0; t < w.end - w.begin - 1; t++) {
        inputs[row * T + t] = tokens[w.begin + t] as number;
        if (w.begin + t + 1 >= w.scoredFrom) targets[row * T + t] = tokens[w.begin + t + 1] as number;
      }
    });
    const losses = tidyValues(() =>
      model.tokenLosses(tf.tensor2d(inputs, [group.length, T], 'int32'), {
        targets: tf.tensor2d(targets, [group.length, T], 'int32'),
        ...(options.skipLayers ? { skipLayers: options.skipLayers } : {}),
      }),
    ) as Float32Array;
    group.forEach((w, row) => {
      for (let t = 0; t < w.end - w.begin - 1; t++) {
        if (targets[row * T + t] === -100) continue;
        const loss = losses[row * T + t] as number;
        sum += loss;
        count += 1;
        if (perToken) perToken[w.begin + t + 1] = loss;
      }
    });
  }
  const loss = count > 0 ? sum / count : NaN;
  return { loss, perplexity: Math.exp(loss), tokens: count, ...(perToken ? { perToken } : {}) };
}
