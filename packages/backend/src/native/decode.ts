import * as tf from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { NATIVE_BACKEND } from './backend.js';
import { loadBinding, type NativeBinding } from './binding.js';
import { floats } from './storage.js';

/** The attention of `positions` new tokens of one sequence over a KV cache (see DecodeKernels.attendCached). */
export interface CachedAttention {
  /** Queries [positions, heads, headDim], as the q projection writes them (before the rotary embedding). */
  q: Float32Array;
  /** New keys and values [positions, kvHeads, headDim] (keys before the rotary embedding). */
  k: Float32Array;
  v: Float32Array;
  /**
   * The cache: rotated keys [kvHeads, headDim, capacity] (transposed, position p in column p)
   * and values [kvHeads, capacity, headDim] of every earlier position. Transposed keys make a
   * query's scores a matrix-vector product over contiguous rows, as its sum of values is.
   */
  kCache: Float32Array;
  vCache: Float32Array;
  /** Receives [positions, heads, headDim]. */
  out: Float32Array;
  /** Rotary tables of the new positions, [positions, headDim]. */
  cos: Float32Array;
  sin: Float32Array;
  positions: number;
  /** Position of the first new token: how many the cache already holds. */
  offset: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  capacity: number;
  /** Multiplies q k^T, usually 1 / sqrt(headDim). */
  scale: number;
  /** Sliding window: a query sees only the last `window` positions, its own included. Default: all. */
  window?: number | null;
}

/**
 * The native engine's kernels on plain float32 arrays, for a batch-1 forward with a KV cache
 * that runs outside TensorFlow.js's ops (LlamaModel's decode path in @deepen/models). A
 * decode step of a small model spends more time dispatching tfjs ops than computing, and the
 * tensor cache copies itself every step; on arrays, a step is a few dozen direct calls and the
 * cache is written in place. Sizes are checked natively: a wrong one throws a RangeError.
 */
export interface DecodeKernels {
  /**
   * The values of a float32 tensor on the native engine, shared with it (no copy): read them,
   * never write them. Good until the tensor is disposed or, for a variable, assigned.
   */
  values(tensor: tf.Tensor): Float32Array;
  /**
   * y [rows, N] = x [rows, K] w (+ bias [N]) with w stored [K, N] (deepen's [in, out]
   * linears), or stored [N, K] when `transposeW` (a tied embedding used as the LM head).
   * One row streams w once (a matrix-vector product); more rows run SGEMM.
   */
  linear(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, rows: number, K: number, N: number, transposeW?: boolean): void;
  /** RMSNorm of each row of x [rows, weight.length] into y: x * rsqrt(mean(x^2) + eps) * weight. */
  rmsNorm(x: Float32Array, weight: Float32Array, y: Float32Array, eps: number): void;
  /** h = silu(gate) * up, elementwise. */
  swiGlu(gate: Float32Array, up: Float32Array, h: Float32Array): void;
  /**
   * Rotates the new keys into the cache at positions offset .. offset + positions - 1 and
   * writes the values beside them (in place), then computes causal attention of the rotated
   * queries over positions 0 .. offset + t; query head h reads kv head h / (heads / kvHeads).
   */
  attendCached(step: CachedAttention): void;
}

let kernels: DecodeKernels | null = null;

function makeKernels(binding: NativeBinding): DecodeKernels {
  // RMSNorm's per-row statistics (which only its backward pass reads), reused between calls.
  let rstd = new Float32Array(64);
  return {
    values(tensor) {
      const backend = tf.backend() as MathBackendCPU;
      if (tensor.dtype !== 'float32') throw new Error(`decode kernels: tensor ${(tensor as Partial<tf.Variable>).name ?? tensor.id} is ${tensor.dtype}, expected float32`);
      // A tensor made on another engine moves here the way tfjs moves a kernel's inputs.
      if (!backend.data.has(tensor.dataId)) tf.engine().moveData(backend, tensor.dataId);
      return floats(backend, tensor);
    },
    linear(x, w, bias, y, rows, K, N, transposeW = false) {
      binding.linear(x, w, bias, y, rows, K, N, transposeW);
    },
    rmsNorm(x, weight, y, eps) {
      // A length that is not a whole number of rows fails the addon's size check.
      const rows = Math.floor(x.length / weight.length);
      if (rstd.length < rows) rstd = new Float32Array(rows);
      binding.rmsNorm(x, weight, y, rstd.length === rows ? rstd : rstd.subarray(0, rows), rows, weight.length, eps);
    },
    swiGlu(gate, up, h) {
      binding.swiglu(gate, up, h);
    },
    attendCached(s) {
      binding.attendCached(s.q, s.k, s.v, s.kCache, s.vCache, s.out, s.cos, s.sin, s.positions, s.offset, s.heads, s.kvHeads, s.headDim, s.capacity, s.scale, s.window ?? 0);
    },
  };
}

/**
 * The decode kernels when the native engine is the active one, else null (callers then use
 * tfjs ops). DEEPEN_FUSED=0, which turns every fused kernel off for comparisons, turns these
 * off too.
 */
export function nativeDecodeKernels(): DecodeKernels | null {
  if (process.env.DEEPEN_FUSED === '0' || tf.getBackend() !== NATIVE_BACKEND) return null;
  if (!kernels) {
    const load = loadBinding();
    if (!load.ok) return null;
    kernels = makeKernels(load.binding);
  }
  return kernels;
}
