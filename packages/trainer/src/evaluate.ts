import * as tf from '@tensorflow/tfjs';
import { sequentialBatches, type Batch, type SequenceSource } from '@deepen/data';
import { tokenCrossEntropy, type LlamaModel } from '@deepen/models';

const IGNORE_INDEX = -100;

/** Positions whose loss counts: mask on and target not ignored. */
export function countedTokens(batch: Batch, ignoreIndex = IGNORE_INDEX): number {
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
 * Mean loss (weighted by counted tokens), perplexity and token accuracy (how often the most
 * likely token is the target) over the first sequences of a set, up to `maxTokens` tokens,
 * always the same ones.
 */
export function evaluateLoss(
  model: LlamaModel,
  sequences: SequenceSource,
  options: { maxTokens: number; batchSize?: number },
): { loss: number; perplexity: number; accuracy: number; tokens: number } {
  const maxSequences = Math.max(1, Math.ceil(options.maxTokens / sequences.seqLen));
  let lossSum = 0;
  let correct = 0;
  let tokens = 0;
  for (const batch of sequentialBatches(sequences, options.batchSize ?? 8, maxSequences)) {
    const [sum, hits] = tf.tidy(() => {
      const { inputs, targets, mask } = batchTensors(batch);
      const logits = model.logits(inputs);
      const weights = tf.mul(tf.cast(tf.notEqual(targets, IGNORE_INDEX), 'float32'), mask);
      const losses = tokenCrossEntropy(logits, targets, IGNORE_INDEX);
      const right = tf.cast(tf.equal(tf.argMax(logits, -1), targets), 'float32');
      return tf.stack([tf.sum(tf.mul(losses, weights)), tf.sum(tf.mul(right, weights))]).dataSync();
    }) as Float32Array;
    lossSum += sum as number;
    correct += hits as number;
    tokens += countedTokens(batch);
  }
  const loss = tokens > 0 ? lossSum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), accuracy: tokens > 0 ? correct / tokens : NaN, tokens };
}
