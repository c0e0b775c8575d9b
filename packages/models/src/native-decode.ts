import * as tf from '@tensorflow/tfjs';
import type { DecodeKernels } from '@deepen/backend';
import type { BlockPlan } from '@deepen/norms';
import { headDim, type LlamaConfig } from './config.js';
import type { BlockBiases } from './families.js';
import type { KVCache } from './kv-cache.js';
import { BLOCK, EMBED, FINAL_NORM, LM_HEAD, layerPrefix } from './names.js';
import type { RotaryTable } from './rope.js';

/** What the array path needs of a LlamaModel (its private parts, handed over at construction). */
export interface ModelParts {
  config: LlamaConfig;
  plans: BlockPlan[];
  rope: RotaryTable;
  biases: BlockBiases;
  qkNorm: boolean;
  windows: Array<number | null>;
  param: (name: string) => tf.Variable;
}

export interface ArrayForwardResult {
  logits: tf.Tensor3D;
  /** Per executed block (when asked): its input and output residual streams, [1, T, H] each. */
  hidden?: { layers: number[]; inputs: tf.Tensor3D[]; outputs: tf.Tensor3D[] };
}

/** a + b, elementwise (float32 rounding, as tf.add). */
function add(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) + (b[i] as number);
  return out;
}

/** x * s for a constant s, as tf.mul(x, s) computes it (s rounded to float32 first). */
function scaled(x: Float32Array, s: number): Float32Array {
  const f = Math.fround(s);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i] as number) * f;
  return out;
}

/** x * g in place, g broadcast over the rows of x ([H] per row, or [1]). */
function scaleRowsInPlace(x: Float32Array, g: Float32Array): Float32Array {
  const n = g.length;
  for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) * (g[n === 1 ? 0 : i % n] as number);
  return x;
}

/** One block's tensors, looked up once (names are built by string concatenation, per call it adds up). */
interface BlockWeights {
  attnNorm: tf.Variable;
  mlpNorm: tf.Variable;
  q: tf.Variable;
  k: tf.Variable;
  v: tf.Variable;
  o: tf.Variable;
  gate: tf.Variable;
  up: tf.Variable;
  down: tf.Variable;
  qBias: tf.Variable | null;
  kBias: tf.Variable | null;
  vBias: tf.Variable | null;
  oBias: tf.Variable | null;
  gateBias: tf.Variable | null;
  upBias: tf.Variable | null;
  downBias: tf.Variable | null;
  qNorm: tf.Variable | null;
  kNorm: tf.Variable | null;
  attnOutNorm: tf.Variable | null;
  mlpOutNorm: tf.Variable | null;
  attnGate: tf.Variable | null;
  mlpGate: tf.Variable | null;
}

/**
 * The model's cached forward for a batch of one on plain arrays through the native engine's
 * decode kernels, skipping TensorFlow.js's per-op dispatch: per layer a handful of direct
 * calls (RMSNorm, one matrix-vector product per projection, attention that writes the new keys
 * and values into the cache in place, SwiGLU) and small elementwise loops. The block wiring
 * mirrors LlamaModel.block step for step, so every scheme computes what the tfjs path does
 * (checked in the tests, together with the uncached forward).
 */
export class ArrayForward {
  private readonly weights: Array<BlockWeights | undefined> = [];

  constructor(private readonly m: ModelParts) {}

  forward(ids: ArrayLike<number>, cache: KVCache, kernels: DecodeKernels, skip: Set<number>, capture: boolean): ArrayForwardResult {
    const { config } = this.m;
    const T = ids.length;
    const H = config.hidden_size;
    const V = config.vocab_size;
    const offset = cache.length;
    const embed = kernels.values(this.m.param(EMBED));
    let x: Float32Array = new Float32Array(T * H);
    for (let t = 0; t < T; t++) {
      const id = ids[t] as number;
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`forward: token id ${id} at position ${offset + t} is outside the vocabulary [0, ${V})`);
      x.set(embed.subarray(id * H, (id + 1) * H), t * H);
    }
    const { cos, sin } = this.m.rope.arrays(offset, T);
    const hidden = capture ? { layers: [] as number[], inputs: [] as Float32Array[], outputs: [] as Float32Array[] } : null;
    for (let i = 0; i < config.num_hidden_layers; i++) {
      if (skip.has(i)) continue;
      const out = this.block(i, x, T, cos, sin, cache, kernels);
      if (hidden) {
        hidden.layers.push(i);
        hidden.inputs.push(x);
        hidden.outputs.push(out);
      }
      x = out;
    }
    const normed = new Float32Array(T * H);
    kernels.rmsNorm(x, kernels.values(this.m.param(FINAL_NORM)), normed, config.rms_norm_eps);
    const logits = new Float32Array(T * V);
    if (config.tie_word_embeddings) kernels.linear(normed, embed, null, logits, T, H, V, true);
    else kernels.linear(normed, kernels.values(this.m.param(LM_HEAD)), null, logits, T, H, V);
    const shape: [number, number, number] = [1, T, H];
    return {
      logits: tf.tensor3d(logits, [1, T, V]),
      ...(hidden
        ? { hidden: { layers: hidden.layers, inputs: hidden.inputs.map((h) => tf.tensor3d(h, shape)), outputs: hidden.outputs.map((h) => tf.tensor3d(h, shape)) } }
        : {}),
    };
  }

  private blockWeights(i: number): BlockWeights {
    let w = this.weights[i];
    if (w) return w;
    const p = (suffix: string) => this.m.param(layerPrefix(i) + suffix);
    const plan = this.m.plans[i] as BlockPlan;
    const b = this.m.biases;
    const gated = plan.gate.kind !== 'none';
    const sandwich = plan.wiring === 'sandwich';
    w = {
      attnNorm: p(BLOCK.attnNorm),
      mlpNorm: p(BLOCK.mlpNorm),
      q: p(BLOCK.q),
      k: p(BLOCK.k),
      v: p(BLOCK.v),
      o: p(BLOCK.o),
      gate: p(BLOCK.gate),
      up: p(BLOCK.up),
      down: p(BLOCK.down),
      qBias: b.q ? p(BLOCK.qBias) : null,
      kBias: b.k ? p(BLOCK.kBias) : null,
      vBias: b.v ? p(BLOCK.vBias) : null,
      oBias: b.o ? p(BLOCK.oBias) : null,
      gateBias: b.gate ? p(BLOCK.gateBias) : null,
      upBias: b.up ? p(BLOCK.upBias) : null,
      downBias: b.down ? p(BLOCK.downBias) : null,
      qNorm: this.m.qkNorm ? p(BLOCK.qNorm) : null,
      kNorm: this.m.qkNorm ? p(BLOCK.kNorm) : null,
      attnOutNorm: sandwich ? p(BLOCK.attnOutNorm) : null,
      mlpOutNorm: sandwich ? p(BLOCK.mlpOutNorm) : null,
      attnGate: gated ? p(BLOCK.attnGate) : null,
      mlpGate: gated ? p(BLOCK.mlpGate) : null,
    };
    this.weights[i] = w;
    return w;
  }

  private block(i: number, x: Float32Array, T: number, cos: Float32Array, sin: Float32Array, cache: KVCache, kernels: DecodeKernels): Float32Array {
    const plan = this.m.plans[i] as BlockPlan;
    const w = this.blockWeights(i);
    const eps = this.m.config.rms_norm_eps;
    let h: Float32Array;
    switch (plan.wiring) {
      case 'pre':
        h = add(this.residual(plan, x), this.gate(this.attention(i, w, norm(kernels, x, w.attnNorm, plan.normScale, eps), T, cos, sin, cache, kernels), w.attnGate, kernels));
        return add(this.residual(plan, h), this.gate(this.mlp(w, norm(kernels, h, w.mlpNorm, plan.normScale, eps), T, kernels), w.mlpGate, kernels));
      case 'post':
        h = norm(kernels, add(this.residual(plan, x), this.gate(this.attention(i, w, x, T, cos, sin, cache, kernels), w.attnGate, kernels)), w.attnNorm, 1, eps);
        return norm(kernels, add(this.residual(plan, h), this.gate(this.mlp(w, h, T, kernels), w.mlpGate, kernels)), w.mlpNorm, 1, eps);
      case 'sandwich': {
        const attended = this.attention(i, w, norm(kernels, x, w.attnNorm, plan.normScale, eps), T, cos, sin, cache, kernels);
        h = add(this.residual(plan, x), this.gate(norm(kernels, attended, w.attnOutNorm!, 1, eps), w.attnGate, kernels));
        const mixed = this.mlp(w, norm(kernels, h, w.mlpNorm, plan.normScale, eps), T, kernels);
        return add(this.residual(plan, h), this.gate(norm(kernels, mixed, w.mlpOutNorm!, 1, eps), w.mlpGate, kernels));
      }
    }
  }

  /** The residual stream where a sublayer joins it (DeepNorm's alpha), as LlamaModel.block. */
  private residual(plan: BlockPlan, h: Float32Array): Float32Array {
    return plan.residualScale === 1 ? h : scaled(h, plan.residualScale);
  }

  /** A sublayer's output times its LayerScale / SkipInit gate, when the scheme has one. */
  private gate(y: Float32Array, gate: tf.Variable | null, kernels: DecodeKernels): Float32Array {
    return gate ? scaleRowsInPlace(y, kernels.values(gate)) : y;
  }

  private attention(i: number, w: BlockWeights, x: Float32Array, T: number, cos: Float32Array, sin: Float32Array, cache: KVCache, kernels: DecodeKernels): Float32Array {
    const { config } = this.m;
    const H = config.hidden_size;
    const nH = config.num_attention_heads;
    const nKV = config.num_key_value_heads;
    const hd = headDim(config);
    let q = linear(kernels, x, w.q, w.qBias, T, H, nH * hd);
    let k = linear(kernels, x, w.k, w.kBias, T, H, nKV * hd);
    const v = linear(kernels, x, w.v, w.vBias, T, H, nKV * hd);
    // Qwen3: each head of q and k normalised over head_dim before the rotary embedding.
    if (w.qNorm) q = norm(kernels, q, w.qNorm, 1, config.rms_norm_eps);
    if (w.kNorm) k = norm(kernels, k, w.kNorm, 1, config.rms_norm_eps);
    const offset = cache.length;
    const layer = cache.layerArrays(i, nKV, hd, offset + T);
    const context = new Float32Array(T * nH * hd);
    kernels.attendCached({
      q, k, v, kCache: layer.k, vCache: layer.v, out: context, cos, sin,
      positions: T, offset, heads: nH, kvHeads: nKV, headDim: hd, capacity: layer.capacity,
      scale: 1 / Math.sqrt(hd), window: this.m.windows[i] ?? null,
    });
    return linear(kernels, context, w.o, w.oBias, T, nH * hd, H);
  }

  private mlp(w: BlockWeights, x: Float32Array, T: number, kernels: DecodeKernels): Float32Array {
    const H = this.m.config.hidden_size;
    const I = this.m.config.intermediate_size;
    const gate = linear(kernels, x, w.gate, w.gateBias, T, H, I);
    const up = linear(kernels, x, w.up, w.upBias, T, H, I);
    const hidden = new Float32Array(T * I);
    kernels.swiGlu(gate, up, hidden); // silu(gate) * up
    return linear(kernels, hidden, w.down, w.downBias, T, I, H);
  }
}

/** RMSNorm of the rows of h; a constant scale is folded into the weight, as LlamaModel.block does. */
function norm(kernels: DecodeKernels, h: Float32Array, weight: tf.Variable, scale: number, eps: number): Float32Array {
  const y = new Float32Array(h.length);
  const values = kernels.values(weight);
  kernels.rmsNorm(h, scale === 1 ? values : scaled(values, scale), y, eps);
  return y;
}

/** x [T, K] W [K, N] (+ b), [T, N]. */
function linear(kernels: DecodeKernels, x: Float32Array, weight: tf.Variable, bias: tf.Variable | null, T: number, K: number, N: number): Float32Array {
  const y = new Float32Array(T * N);
  kernels.linear(x, kernels.values(weight), bias ? kernels.values(bias) : null, y, T, K, N);
  return y;
}
