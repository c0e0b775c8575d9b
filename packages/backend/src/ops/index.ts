import * as tf from '@tensorflow/tfjs';
import { fusedAdam, fusedAttention, fusedCrossEntropy, fusedRmsNorm, fusedRope, fusedSwiGlu, hasFused, type AdamStep, type FusedOp } from '../fused/index.js';
import * as composite from './composite.js';

/**
 * One op per fused computation. Each runs the fused kernel (../fused) where the active engine
 * registers it and the composite tf.* code (./composite.ts) elsewhere, or everywhere with
 * DEEPEN_FUSED=0; callers make one call and never know which ran. The fused kernels take
 * float32 only, so inputs of another dtype take the composite path too.
 */

/** Whether `op` runs fused here on these inputs. */
function fuses(op: FusedOp, ...floats: tf.Tensor[]): boolean {
  return floats.every((t) => t.dtype === 'float32') && hasFused(op);
}

/** RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * weight, statistics in float32. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return fuses('rmsNorm', x, weight) ? fusedRmsNorm(x, weight, eps) : composite.rmsNorm(x, weight, eps);
}

/** SwiGLU: silu(gate) * up, elementwise over two tensors of one shape. */
export function swiGlu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return fuses('swiGlu', gate, up) ? fusedSwiGlu(gate, up) : composite.swiGlu(gate, up);
}

/**
 * Rotary embedding in the Hugging Face rotate_half convention: x * cos + rotate_half(x) * sin,
 * x [..., T, D] with tables cos and sin [T, D].
 */
export function applyRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return fuses('rope', x, cos, sin) ? fusedRope(x, cos, sin) : composite.applyRope(x, cos, sin);
}

export interface CausalAttentionOptions {
  /** Multiplies q k^T, usually 1 / sqrt(hd). */
  scale: number;
  /** Position of the first query, i.e. keys already cached before it. Default S - T. */
  offset?: number;
  /**
   * Sliding window (Mistral, Qwen): query position i sees keys j with i - window < j <= i,
   * `window` keys including its own, as transformers masks it. Default: every earlier key.
   */
  window?: number;
}

/**
 * Causal attention of q [B, nH, T, hd] over k, v [B, nKV, S, hd]: query t (position
 * offset + t) sees keys 0..offset + t, and query head h reads kv head h / (nH / nKV)
 * (grouped-query attention, HF repeat_kv), within `window` keys when one is given (that case
 * runs the composite: the fused kernels have no window). Returns [B, nH, T, hd]. The op applies the causal
 * mask itself on every path; callers never build one.
 */
export function causalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options: CausalAttentionOptions): tf.Tensor4D {
  const S = k.shape[2];
  const T = q.shape[2];
  const offset = options.offset ?? S - T;
  if (q.rank !== 4 || k.rank !== 4 || !tf.util.arraysEqual(k.shape, v.shape) || k.shape[0] !== q.shape[0] || k.shape[3] !== q.shape[3] || q.shape[1] % k.shape[1] !== 0 || offset < 0 || offset + T > S) {
    throw new Error(`causalAttention: q [${q.shape}], k [${k.shape}], v [${v.shape}] with offset ${offset} do not fit [B, nH, T, hd] x [B, nKV, S, hd], nKV dividing nH, 0 <= offset, offset + T <= S`);
  }
  const window = options.window;
  if (window !== undefined && !(Number.isInteger(window) && window > 0)) throw new Error(`causalAttention: window must be a positive integer, got ${window}`);
  // A window as long as the keys hides nothing: the plain causal kernel computes the same.
  if (window !== undefined && window < offset + T) return composite.causalAttention(q, k, v, { scale: options.scale, offset, window });
  const resolved = { scale: options.scale, offset };
  return fuses('attention', q, k, v) ? fusedAttention(q, k, v, resolved) : composite.causalAttention(q, k, v, resolved);
}

/**
 * Per-row cross-entropy of logits [N, V] against target ids [N]: logsumexp(logits) -
 * logits[target], 0 for rows whose target is `ignoreIndex`. Returns [N].
 */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, ignoreIndex: number): tf.Tensor1D {
  if (!fuses('crossEntropy', logits)) return composite.crossEntropy(logits, targets, ignoreIndex);
  // One kernel: no softmax over the vocabulary is ever stored, forward or backward.
  return tf.tidy(() => fusedCrossEntropy(logits, targets.dtype === 'int32' ? targets : (tf.cast(targets, 'int32') as tf.Tensor1D), ignoreIndex));
}

/**
 * One Adam / AdamW step over a parameter, its gradient and both moments (one shape): new
 * [param, m, v]. `step.decay` is L2 in the gradient (Adam) or decoupled (AdamW).
 */
export function adamUpdate(param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, step: AdamStep): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return fuses('adam', param, grad, m, v) ? fusedAdam(param, grad, m, v, step) : composite.adamUpdate(param, grad, m, v, step);
}
