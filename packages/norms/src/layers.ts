import * as tf from '@tensorflow/tfjs';
import { rmsNorm as rmsNormOp } from '@deepen/backend';

/**
 * RMSNorm as LLaMA defines it: x * rsqrt(mean(x^2) + eps) * weight over the last axis,
 * with the statistics in float32. One op of @deepen/backend: fused in one pass (forward and
 * backward) where the engine has the kernel, its tf.* composite elsewhere.
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return rmsNormOp(x, weight, eps);
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
