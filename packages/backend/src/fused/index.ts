import * as tf from '@tensorflow/tfjs';
import { getGradient, getKernel, registerGradient } from '@tensorflow/tfjs';
import type { GradConfig, NamedAttrMap } from '@tensorflow/tfjs';

/**
 * Fused kernels: one kernel where tfjs would run a chain of small ones, each with its
 * backward as one kernel too. An engine offers them by registering these kernel names (the
 * native engine does). Callers never use them directly: the ops of ../ops (rmsNorm, swiGlu,
 * applyRope, causalAttention, crossEntropy, adamUpdate) run them where `hasFused` is true and
 * their composite tf.* code (../ops/composite.ts) elsewhere, which computes the same
 * function and serves as the reference in tests.
 *
 * Inputs, attributes and outputs of each (all float32 unless said):
 * - DeepenCrossEntropy {logits [N, V], targets [N] int32} {ignoreIndex} -> [loss [N], lse [N]]
 *   loss = logsumexp(logits) - logits[target], 0 where target == ignoreIndex.
 * - DeepenRmsNorm {x [..., H], weight [H]} {eps} -> [y, rstd [rows]]
 * - DeepenSwiGLU {gate, up} -> [silu(gate) * up]
 * - DeepenRope {x [..., T, D], cos [T, D], sin [T, D]} {backward} -> [rotated x]
 * - DeepenAttention {q [B, nH, T, hd], k, v [B, nKV, S, hd]} {scale, offset} -> [out [B, nH, T, hd], lse [B, nH, T]]
 *   causal: query t (position offset + t) sees keys 0..offset + t; query head h reads kv head h / (nH / nKV).
 * - DeepenAdam {param, grad, m, v} {lr, beta1, beta2, eps, correction1, correction2, decay, decoupled} -> [param, m, v]
 * and the gradient kernels DeepenCrossEntropyGrad, DeepenRmsNormGrad, DeepenSwiGLUGrad, DeepenAttentionGrad.
 */
export const FUSED_KERNELS = {
  crossEntropy: 'DeepenCrossEntropy',
  crossEntropyGrad: 'DeepenCrossEntropyGrad',
  rmsNorm: 'DeepenRmsNorm',
  rmsNormGrad: 'DeepenRmsNormGrad',
  swiGlu: 'DeepenSwiGLU',
  swiGluGrad: 'DeepenSwiGLUGrad',
  rope: 'DeepenRope',
  attention: 'DeepenAttention',
  attentionGrad: 'DeepenAttentionGrad',
  adam: 'DeepenAdam',
} as const;

export type FusedOp = 'crossEntropy' | 'rmsNorm' | 'swiGlu' | 'rope' | 'attention' | 'adam';

/** Set DEEPEN_FUSED=0 to run the composite code everywhere (for comparisons and debugging). */
const disabled = () => process.env.DEEPEN_FUSED === '0';

/** Whether the active engine runs `op` as one fused kernel. */
export function hasFused(op: FusedOp): boolean {
  return !disabled() && getKernel(FUSED_KERNELS[op], tf.getBackend()) !== undefined;
}

function run(kernel: string, inputs: Record<string, tf.Tensor>, attrs: NamedAttrMap = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(kernel, inputs as never, attrs) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
}

/** The first output of a kernel; the others (saved for the backward pass) are released. */
function first<T extends tf.Tensor>(outputs: tf.Tensor[]): T {
  tf.dispose(outputs.slice(1));
  return outputs[0] as T;
}

/** Per-row cross-entropy of logits [N, V] against int32 targets [N]. */
export function fusedCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, ignoreIndex: number): tf.Tensor1D {
  return first(run(FUSED_KERNELS.crossEntropy, { logits, targets }, { ignoreIndex }));
}

/** RMSNorm over the last axis: x * rsqrt(mean(x^2) + eps) * weight. */
export function fusedRmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return first(run(FUSED_KERNELS.rmsNorm, { x, weight }, { eps }));
}

/** silu(gate) * up. */
export function fusedSwiGlu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return first(run(FUSED_KERNELS.swiGlu, { gate, up }));
}

/** Rotary embedding (halves convention) of x [..., T, D] with tables cos, sin [T, D]. */
export function fusedRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return first(run(FUSED_KERNELS.rope, { x, cos, sin }, { backward: false }));
}

/** Causal attention of q [B, nH, T, hd] over k, v [B, nKV, S, hd]; returns [B, nH, T, hd]. */
export function fusedAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options: { scale: number; offset: number }): tf.Tensor4D {
  return first(run(FUSED_KERNELS.attention, { q, k, v }, { scale: options.scale, offset: options.offset }));
}

export interface AdamStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1 - beta1^t and 1 - beta2^t. */
  correction1: number;
  correction2: number;
  /** Weight decay: added to the gradient (Adam) or to the update (decoupled, AdamW). */
  decay: number;
  decoupled: boolean;
}

/** One Adam step in one pass: new [param, m, v]. */
export function fusedAdam(param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, step: AdamStep): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return run(FUSED_KERNELS.adam, { param, grad, m, v }, { ...step }) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

const GRADIENTS: GradConfig[] = [
  {
    kernelName: FUSED_KERNELS.crossEntropy,
    inputsToSave: ['logits', 'targets'],
    outputsToSave: [false, true],
    gradFunc: (dys, saved, attrs) => {
      const [logits, targets, lse] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
      const dx = run(FUSED_KERNELS.crossEntropyGrad, { logits, targets, lse, dy }, attrs as NamedAttrMap)[0]!;
      return { logits: () => dx, targets: () => tf.zerosLike(targets) };
    },
  },
  {
    kernelName: FUSED_KERNELS.rmsNorm,
    inputsToSave: ['x', 'weight'],
    outputsToSave: [false, true],
    gradFunc: (dys, saved) => {
      const [x, weight, rstd] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
      // One kernel computes both gradients; made here, outside the per-input scopes, so the
      // one that is not needed is released with the backward pass instead of leaking.
      const [dx, dw] = run(FUSED_KERNELS.rmsNormGrad, { x, weight, rstd, dy }) as [tf.Tensor, tf.Tensor];
      return { x: () => dx, weight: () => dw };
    },
  },
  {
    kernelName: FUSED_KERNELS.swiGlu,
    inputsToSave: ['gate', 'up'],
    gradFunc: (dy, saved) => {
      const [gate, up] = saved as [tf.Tensor, tf.Tensor];
      const [dGate, dUp] = run(FUSED_KERNELS.swiGluGrad, { gate, up, dy: dy as tf.Tensor }) as [tf.Tensor, tf.Tensor];
      return { gate: () => dGate, up: () => dUp };
    },
  },
  {
    kernelName: FUSED_KERNELS.rope,
    inputsToSave: ['cos', 'sin'],
    gradFunc: (dy, saved) => {
      const [cos, sin] = saved as [tf.Tensor, tf.Tensor];
      // The rotation's transpose is the same kernel run backwards; the tables are constants.
      return {
        x: () => run(FUSED_KERNELS.rope, { x: dy as tf.Tensor, cos, sin }, { backward: true })[0]!,
        cos: () => tf.zerosLike(cos),
        sin: () => tf.zerosLike(sin),
      };
    },
  },
  {
    kernelName: FUSED_KERNELS.attention,
    inputsToSave: ['q', 'k', 'v'],
    outputsToSave: [false, true],
    gradFunc: (dys, saved, attrs) => {
      const [q, k, v, lse] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      const dOut = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
      const [dq, dk, dv] = run(FUSED_KERNELS.attentionGrad, { q, k, v, dOut, lse }, attrs as NamedAttrMap) as [tf.Tensor, tf.Tensor, tf.Tensor];
      return { q: () => dq, k: () => dk, v: () => dv };
    },
  },
];

/** Registers the backward passes of the fused kernels with tfjs's gradient tape (once). */
export function registerFusedGradients(): void {
  for (const config of GRADIENTS) if (!getGradient(config.kernelName)) registerGradient(config);
}
