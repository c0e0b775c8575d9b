import * as tf from '@tensorflow/tfjs';
import { fusedRmsNorm, hasFused } from '@deepen/backend';

/**
 * RMSNorm as LLaMA defines it: x * rsqrt(mean(x^2) + eps) * weight over the last axis,
 * with the statistics in float32 (the inputs are float32 already; the cast keeps that true
 * if a caller ever passes another dtype). Engines with a fused kernel run it in one pass,
 * forward and backward; the tf.* code below is the reference it is tested against.
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  if (x.dtype === 'float32' && hasFused('rmsNorm')) return fusedRmsNorm(x, weight, eps);
  return tf.tidy(() => {
    const h = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    const meanSquare = tf.mean(tf.square(h), -1, true);
    return tf.mul(tf.mul(h, tf.rsqrt(tf.add(meanSquare, eps))), weight);
  });
}

/** LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias. */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor | null, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const h = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    const { mean, variance } = tf.moments(h, -1, true);
    const normed = tf.mul(tf.mul(tf.sub(h, mean), tf.rsqrt(tf.add(variance, eps))), weight);
    return bias ? tf.add(normed, bias) : normed;
  });
}
