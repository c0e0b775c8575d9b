import * as tf from '@tensorflow/tfjs';
import { sequentialBatches, type Batch, type SequenceSet } from '@deepen/data';
import type { LlamaModel } from '@deepen/models';

/** Positions whose loss counts: mask on and target not ignored. */
export function countedTokens(batch: Batch, ignoreIndex = -100): number {
  let n = 0;
  for (let i = 0; i < batch.mask.length; i++) if (batch.mask[i]! > 0 && batch.targets[i] !== ignoreIndex) n++;
  return n;
}

/** A batch as int32 inputs/targets and a float32 mask, [batchSize, seqLen]. */
export function batchTensors(batch: Batch): { inputs: tf.Tensor2D; targets: tf.Tensor2D; mask: tf.Tensor2D } {
  const shape: [number, number] = [batch.batchSize, batch.seqLen];
  return {
    inputs: tf.tensor2d(batch.inputs, shape, 'int32'),
    targets: tf.tensor2d(batch.targets, shape, 'int32'),
    mask: tf.tensor2d(batch.mask, shape, 'float32'),
  };
}

/**
 * Mean loss (weighted by counted tokens) and perplexity over the first sequences of a set,
 * up to `maxTokens` tokens, always the same ones.
 */
export function evaluateLoss(model: LlamaModel, sequences: SequenceSet, options: { maxTokens: number; batchSize?: number }): { loss: number; perplexity: number; tokens: number } {
  const maxSequences = Math.max(1, Math.ceil(options.maxTokens / sequences.options.seqLen));
  let sum = 0;
  let tokens = 0;
  for (const batch of sequentialBatches(sequences, options.batchSize ?? 8, maxSequences)) {
    const n = countedTokens(batch);
    const mean = tf.tidy(() => {
      const { inputs, targets, mask } = batchTensors(batch);
      return model.loss(inputs, { targets, mask }).dataSync()[0] as number;
    });
    sum += mean * n;
    tokens += n;
  }
  const loss = tokens > 0 ? sum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), tokens };
}
