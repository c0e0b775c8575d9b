import type * as tf from '@tensorflow/tfjs';
import { applyRope as applyRopeOp, composite } from '@deepen/backend';

/**
 * Rotary position tables in the Hugging Face convention: inv_freq_i = 1 / theta^(2i/d), the
 * angle table is the frequencies concatenated twice (halves, not interleaved pairs).
 * Returns cos and sin as [positions, headDim] row-major arrays.
 */
export function ropeTables(headDim: number, positions: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(positions * headDim);
  const sin = new Float32Array(positions * headDim);
  for (let i = 0; i < half; i++) {
    // Computed in float32 as HF does (torch.arange(...).float() / dim, then theta ** that).
    const invFreq = Math.fround(1 / Math.fround(theta ** Math.fround((2 * i) / headDim)));
    for (let p = 0; p < positions; p++) {
      const angle = Math.fround(p * invFreq);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[p * headDim + i] = c;
      cos[p * headDim + i + half] = c;
      sin[p * headDim + i] = s;
      sin[p * headDim + i + half] = s;
    }
  }
  return { cos, sin };
}

/** rotate_half(x) = concat(-x[..., d/2:], x[..., :d/2]) (the composite rotary's own, from @deepen/backend). */
export const rotateHalf: (x: tf.Tensor) => tf.Tensor = composite.rotateHalf;

/**
 * x * cos + rotate_half(x) * sin, with cos/sin of shape [T, headDim] broadcast over
 * [B, heads, T, headDim]: the rotary op of @deepen/backend (fused where the engine has it).
 */
export function applyRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return applyRopeOp(x, cos, sin);
}
