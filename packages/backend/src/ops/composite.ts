import * as tf from '@tensorflow/tfjs';
import type { AdamStep } from '../fused/index.js';

/**
 * The composite (plain tf.*) form of every op in ./index.ts: what runs on engines without the
 * fused kernels, and the reference the fused kernels are tested against. Every engine runs
 * these; their math is the one checked against PyTorch, so change it only with that check.
 */

/** Added to the scores of keys a query must not see. */
const MASKED = -1e9;

/**
 * RMSNorm as LLaMA defines it: x * rsqrt(mean(x^2) + eps) * weight over the last axis, with
 * the statistics in float32 (the inputs are float32 already; the cast keeps that true if a
 * caller ever passes another dtype).
 */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const h = x.dtype === 'float32' ? x : tf.cast(x, 'float32');
    const meanSquare = tf.mean(tf.square(h), -1, true);
    return tf.mul(tf.mul(h, tf.rsqrt(tf.add(meanSquare, eps))), weight);
  });
}

/** SwiGLU: silu(gate) * up. */
export function swiGlu(gate: tf.Tensor, up: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up));
}

/** rotate_half(x) = concat(-x[..., d/2:], x[..., :d/2]). */
export function rotateHalf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = x.shape[x.rank - 1] as number;
    const [x1, x2] = tf.split(x, [d / 2, d / 2], -1) as [tf.Tensor, tf.Tensor];
    return tf.concat([tf.neg(x2), x1], -1);
  });
}

/**
 * Rotary embedding in the Hugging Face convention (halves, not interleaved pairs):
 * x * cos + rotate_half(x) * sin, with cos and sin [T, D] broadcast over x [..., T, D].
 */
export function applyRope(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)));
}

/**
 * Additive causal mask [rep * T, offset + T]: query t (position offset + t) sees keys
 * 0..offset + t and gets -1e9 on the others. The T rows repeat `rep` times, once per query
 * head sharing a kv head (the row order of `causalAttention`'s grouped queries).
 */
export function causalMask(seq: number, offset: number, rep: number, window?: number): tf.Tensor2D {
  const total = offset + seq;
  const values = new Float32Array(rep * seq * total);
  for (let r = 0; r < rep; r++) {
    for (let t = 0; t < seq; t++) {
      const row = (r * seq + t) * total;
      for (let s = offset + t + 1; s < total; s++) values[row + s] = MASKED;
      // Sliding window: keys at or before position (offset + t) - window are out of reach.
      if (window !== undefined) for (let s = 0; s <= offset + t - window; s++) values[row + s] = MASKED;
    }
  }
  return tf.tensor2d(values, [rep * seq, total]);
}

/**
 * Causal attention softmax(q k^T * scale + mask) v of q [B, nH, T, hd] over k, v
 * [B, nKV, S, hd]; query t sits at position offset + t. Grouped-query attention: query head
 * h = j*rep + r uses kv head j (HF repeat_kv). Instead of copying each kv head rep times, the
 * rep query heads of a group are folded into the rows, q [B, nKV, rep*T, hd] against
 * k [B, nKV, S, hd], and the mask rows repeat to match.
 */
export function causalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, options: { scale: number; offset: number; window?: number }): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, nH, T, hd] = q.shape;
    const nKV = k.shape[1];
    const rep = nH / nKV;
    const mask = causalMask(T, options.offset, rep, options.window);
    const grouped = tf.reshape(q, [B, nKV, rep * T, hd]);
    const scores = tf.add(tf.mul(tf.matMul(grouped, k, false, true), options.scale), mask);
    return tf.reshape(tf.matMul(tf.softmax(scores), v), [B, nH, T, hd]) as tf.Tensor4D;
  });
}

/**
 * Per-row cross-entropy of logits [N, V] against target ids [N], computed as
 * logsumexp(logits) - logit[target] (never materialising the softmax); 0 where the target is
 * `ignoreIndex`.
 */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, ignoreIndex: number): tf.Tensor1D {
  return tf.tidy(() => {
    const [n, V] = logits.shape;
    const counts = tf.notEqual(targets, ignoreIndex);
    const safeTargets = tf.where(counts, targets, tf.zerosLike(targets));
    // The target logit of row r sits at r * V + target in the flattened logits.
    const flatIndex = tf.add(tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(V, 'int32')), tf.cast(safeTargets, 'int32'));
    const nll = tf.sub(tf.logSumExp(logits, 1), tf.gather(tf.reshape(logits, [n * V]), flatIndex));
    return tf.mul(nll, tf.cast(counts, 'float32')) as tf.Tensor1D;
  });
}

/**
 * One Adam / AdamW step: new [param, m, v]. With decay d, Adam adds d * param to the gradient
 * (L2, as PyTorch's Adam) and AdamW adds it to the update (decoupled).
 */
export function adamUpdate(p: tf.Tensor, g0: tf.Tensor, m: tf.Tensor, v: tf.Tensor, s: AdamStep): [tf.Tensor, tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const g = s.decay > 0 && !s.decoupled ? tf.add(g0, tf.mul(p, s.decay)) : g0;
    const mNew = tf.add(tf.mul(m, s.beta1), tf.mul(g, 1 - s.beta1));
    const vNew = tf.add(tf.mul(v, s.beta2), tf.mul(tf.square(g), 1 - s.beta2));
    let update = tf.div(tf.div(mNew, s.correction1), tf.add(tf.sqrt(tf.div(vNew, s.correction2)), s.eps));
    if (s.decay > 0 && s.decoupled) update = tf.add(update, tf.mul(p, s.decay));
    return [tf.sub(p, tf.mul(update, s.lr)), mNew, vNew];
  });
}
