import * as tf from '@tensorflow/tfjs';
import type { Batch } from '@deepen/data';
import type { LlamaModel } from '@deepen/models';
import type { DepthDiagnostics } from '@deepen/core';

/**
 * Depth diagnostics over batches of held-out text, accumulated batch by batch: only one
 * batch's hidden states are alive at a time, so memory stays bounded on long evaluations.
 */
export function depthDiagnostics(model: LlamaModel, batches: Iterable<Batch>): DepthDiagnostics {
  const L = model.config.num_hidden_layers;
  const sum = new Float64Array(L);
  const sumSq = new Float64Array(L);
  const normSum = new Float64Array(L);
  const cosSum = new Float64Array(L);
  const angleAll = Array.from({ length: L }, (_, l) => new Float64Array(L - l));
  const angleLast = Array.from({ length: L }, (_, l) => new Float64Array(L - l));
  let tokens = 0;
  let sequences = 0;
  let elements = 0;
  for (const batch of batches) {
    const stats = tf.tidy(() => {
      const inputs = tf.tensor2d(batch.inputs, [batch.batchSize, batch.seqLen], 'int32');
      const { hidden } = model.forward(inputs, { captureHidden: true });
      const states = [hidden!.inputs[0]!, ...hidden!.outputs];
      const units = states.map((s) => tf.div(s, tf.add(tf.norm(s, 'euclidean', -1, true), 1e-12)));
      const per = states.slice(1).map((s) => tf.stack([tf.sum(s), tf.sum(tf.square(s)), tf.sum(tf.norm(s, 'euclidean', -1))]));
      const angles: tf.Tensor[] = [];
      for (let l = 0; l < L; l++) {
        for (let n = 1; n <= L - l; n++) {
          const cos = tf.clipByValue(tf.sum(tf.mul(units[l]!, units[l + n]!), -1), -1, 1); // [B, T]
          const angle = tf.div(tf.acos(cos), Math.PI);
          angles.push(tf.stack([tf.sum(angle), tf.sum(tf.slice(angle, [0, batch.seqLen - 1], [-1, 1])), n === 1 ? tf.sum(cos) : tf.scalar(0)]));
        }
      }
      return { per: tf.stack(per).dataSync(), angles: tf.stack(angles).dataSync() };
    });
    const count = batch.batchSize * batch.seqLen;
    for (let l = 0; l < L; l++) {
      sum[l]! += stats.per[3 * l]!;
      sumSq[l]! += stats.per[3 * l + 1]!;
      normSum[l]! += stats.per[3 * l + 2]!;
    }
    let k = 0;
    for (let l = 0; l < L; l++) {
      for (let n = 1; n <= L - l; n++) {
        angleAll[l]![n - 1]! += stats.angles[3 * k]!;
        angleLast[l]![n - 1]! += stats.angles[3 * k + 1]!;
        if (n === 1) cosSum[l]! += stats.angles[3 * k + 2]!;
        k++;
      }
    }
    tokens += count;
    sequences += batch.batchSize;
    elements += count * model.config.hidden_size;
  }
  if (tokens === 0) throw new Error('depth diagnostics need at least one batch');
  const layers = Array.from({ length: L }, (_, l) => {
    const mean = sum[l]! / elements;
    return { layer: l, outputVariance: sumSq[l]! / elements - mean * mean, outputNorm: normSum[l]! / tokens, blockInfluence: 1 - cosSum[l]! / tokens };
  });
  return {
    layers,
    angularAllTokens: angleAll.map((row) => Array.from(row, (v) => v / tokens)),
    angularLastToken: angleLast.map((row) => Array.from(row, (v) => v / sequences)),
    tokens,
  };
}
