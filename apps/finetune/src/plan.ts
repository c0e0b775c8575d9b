import { badRequest } from './errors.js';
import type { Hyperparameters } from './store/types.js';

type Auto<T> = T | 'auto' | undefined;

export interface RequestedHyperparameters {
  n_epochs?: Auto<number>;
  batch_size?: Auto<number>;
  learning_rate?: Auto<number>;
  warmup?: Auto<number>;
  max_seq_len?: Auto<number>;
}

/** Optimizer steps per pass over the examples; the last batch of a pass is topped up from the next. */
export function stepsPerEpoch(examples: number, batchSize: number): number {
  return Math.ceil(examples / batchSize);
}

const given = <T>(value: Auto<T>): value is T => value !== undefined && value !== 'auto';

/**
 * Resolves "auto" hyperparameters for a training file and a model, and checks the given ones
 * against them; a problem is a 400 naming the field.
 */
export function resolveHyperparameters(requested: RequestedHyperparameters, facts: { examples: number; contextLength: number }): { hyperparameters: Hyperparameters; totalSteps: number } {
  const batch = given(requested.batch_size) ? requested.batch_size : Math.min(16, Math.max(1, Math.ceil(facts.examples / 10)));
  if (batch > facts.examples) {
    throw badRequest(`hyperparameters.batch_size (${batch}) is larger than the training file's ${facts.examples} examples.`, 'invalid_value', 'hyperparameters.batch_size');
  }
  const epochs = given(requested.n_epochs) ? requested.n_epochs : 3;
  const totalSteps = epochs * stepsPerEpoch(facts.examples, batch);
  const warmup = given(requested.warmup) ? requested.warmup : Math.floor(totalSteps / 10);
  if (warmup > totalSteps) {
    throw badRequest(`hyperparameters.warmup (${warmup}) is more than the job's ${totalSteps} steps.`, 'invalid_value', 'hyperparameters.warmup');
  }
  const maxSeqLen = given(requested.max_seq_len) ? requested.max_seq_len : facts.contextLength;
  if (maxSeqLen > facts.contextLength) {
    throw badRequest(`hyperparameters.max_seq_len (${maxSeqLen}) is longer than the model's context of ${facts.contextLength} tokens.`, 'invalid_value', 'hyperparameters.max_seq_len');
  }
  return {
    hyperparameters: { n_epochs: epochs, batch_size: batch, learning_rate: given(requested.learning_rate) ? requested.learning_rate : 1e-4, warmup, max_seq_len: maxSeqLen },
    totalSteps,
  };
}
