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

/**
 * x = scale * x + a in place, with tf's float32 roundings (tf.mul(x, scale) is rounded before
 * tf.add); `scale` 1 is the plain sum.
 */
function addResidualInPlace(x: Float32Array, scale: number, a: Float32Array): void {
  if (scale === 1) {
    for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) + (a[i] as number);
    return;
  }
  const f = Math.fround(scale);
  for (let i = 0; i < x.length; i++) x[i] = Math.fround((x[i] as number) * f) + (a[i] as number);
}

/** out = scale * x + a, as addResidualInPlace computes it, into another array. */
function addResidual(out: Float32Array, x: Float32Array, scale: number, a: Float32Array): void {
  const f = Math.fround(scale);
  for (let i = 0; i < x.length; i++) out[i] = (scale === 1 ? (x[i] as number) : Math.fround((x[i] as number) * f)) + (a[i] as number);
}

/** x * g in place, g broadcast over the rows of x ([H] per row, or [1]), as tf.mul(x, g). */
function gateInPlace(x: Float32Array, g: Float32Array): void {
  const n = g.length;
  for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) * (g[n === 1 ? 0 : i % n] as number);
}

/**
 * The arrays one forward of `positions` tokens computes into, reused from step to step: a
 * decode step would otherwise allocate a dozen arrays per layer, and each allocation of a
 * typed array (its backing store, its share of garbage collection) costs about as much as the
 * small kernels that fill it.
 */
class Workspace {
  /** The residual stream [T, H], updated in place block by block. */
  readonly x: Float32Array;
  /** A norm's output [T, H], and the sum that a post-norm block normalises. */
  readonly normed: Float32Array;
  readonly sum: Float32Array;
  /** A sublayer's output [T, H]. */
  readonly out: Float32Array;
  readonly q: Float32Array;
  readonly k: Float32Array;
  readonly v: Float32Array;
  readonly qNormed: Float32Array;
  readonly kNormed: Float32Array;
  readonly context: Float32Array;
  readonly gate: Float32Array;
  readonly up: Float32Array;
  readonly hidden: Float32Array;

  constructor(
    readonly positions: number,
    config: LlamaConfig,
  ) {
    const T = positions;
    const H = config.hidden_size;
    const hd = headDim(config);
    const q = config.num_attention_heads * hd;
    const kv = config.num_key_value_heads * hd;
    const I = config.intermediate_size;
    this.x = new Float32Array(T * H);
    this.normed = new Float32Array(T * H);
    this.sum = new Float32Array(T * H);
    this.out = new Float32Array(T * H);
    this.q = new Float32Array(T * q);
    this.k = new Float32Array(T * kv);
    this.v = new Float32Array(T * kv);
    this.qNormed = new Float32Array(T * q);
    this.kNormed = new Float32Array(T * kv);
    this.context = new Float32Array(T * q);
    this.gate = new Float32Array(T * I);
    this.up = new Float32Array(T * I);
    this.hidden = new Float32Array(T * I);
  }
}

/**
 * A weight and its values. They are read from the engine again only when the variable's tensor
 * changes (an assign gives it a new dataId); a lookup per weight per step adds up.
 */
class WeightRef {
  private dataId: object | null = null;
  private current: Float32Array | null = null;
  private scale = 1;
  private scaledValues: Float32Array | null = null;

  constructor(readonly variable: tf.Variable) {}

  values(kernels: DecodeKernels): Float32Array {
    if (this.variable.dataId !== this.dataId || !this.current) {
      this.current = kernels.values(this.variable);
      this.dataId = this.variable.dataId;
      this.scaledValues = null;
    }
    return this.current;
  }

  /** The values times `scale`, rounded to float32 as tf.mul rounds them, computed once. */
  scaled(kernels: DecodeKernels, scale: number): Float32Array {
    const values = this.values(kernels);
    if (scale === 1) return values;
    if (!this.scaledValues || this.scale !== scale) {
      const f = Math.fround(scale);
      this.scaledValues = values.map((w) => w * f);
      this.scale = scale;
    }
    return this.scaledValues;
  }
}

/** One block's weights, looked up once (names are built by string concatenation). */
interface BlockWeights {
  attnNorm: WeightRef;
  mlpNorm: WeightRef;
  q: WeightRef;
  k: WeightRef;
  v: WeightRef;
  o: WeightRef;
  gate: WeightRef;
  up: WeightRef;
  down: WeightRef;
  qBias: WeightRef | null;
  kBias: WeightRef | null;
  vBias: WeightRef | null;
  oBias: WeightRef | null;
  gateBias: WeightRef | null;
  upBias: WeightRef | null;
  downBias: WeightRef | null;
  qNorm: WeightRef | null;
  kNorm: WeightRef | null;
  attnOutNorm: WeightRef | null;
  mlpOutNorm: WeightRef | null;
  attnGate: WeightRef | null;
  mlpGate: WeightRef | null;
}

/** The weights outside the blocks. */
interface ModelWeights {
  embed: WeightRef;
  finalNorm: WeightRef;
  /** Null when the embedding is tied and serves as the LM head. */
  head: WeightRef | null;
}

const NO_SKIP: ReadonlySet<number> = new Set();

/**
 * The model's cached forward for a batch of one on plain arrays through the native engine's
 * decode kernels, skipping TensorFlow.js's per-op dispatch: per layer a handful of direct
 * calls (RMSNorm, one matrix-vector product per projection, attention that writes the new keys
 * and values into the cache in place, SwiGLU) and small elementwise loops, into arrays reused
 * from step to step. The block wiring mirrors LlamaModel.block step for step, so every scheme
 * computes what the tfjs path does (checked in the tests, together with the uncached forward).
 */
export class ArrayForward {
  private weights: Array<BlockWeights | undefined> = [];
  private outer: ModelWeights | null = null;
  private workspace: Workspace | null = null;

  constructor(private readonly m: ModelParts) {}

  /** Drops the weights' values and the workspace (the model is being disposed). */
  release(): void {
    this.weights = [];
    this.outer = null;
    this.workspace = null;
  }

  /** Logits of every position [1, T, V] (and the blocks' hidden states when asked). */
  forward(ids: ArrayLike<number>, cache: KVCache, kernels: DecodeKernels, skip: ReadonlySet<number>, capture: boolean): ArrayForwardResult {
    const { config } = this.m;
    const T = ids.length;
    const H = config.hidden_size;
    const V = config.vocab_size;
    const hidden = capture ? { layers: [] as number[], inputs: [] as Float32Array[], outputs: [] as Float32Array[] } : null;
    const ws = this.run(ids, cache, kernels, skip, hidden);
    // A new array each forward: the logits tensor takes it over.
    const logits = new Float32Array(T * V);
    this.head(ws.normed, logits, T, kernels);
    const shape: [number, number, number] = [1, T, H];
    return {
      logits: tf.tensor3d(logits, [1, T, V]),
      ...(hidden
        ? { hidden: { layers: hidden.layers, inputs: hidden.inputs.map((h) => tf.tensor3d(h, shape)), outputs: hidden.outputs.map((h) => tf.tensor3d(h, shape)) } }
        : {}),
    };
  }

  /** The logits of the last position only, into `out` [V]: a decode step, no tensor made. */
  lastLogits(ids: ArrayLike<number>, cache: KVCache, kernels: DecodeKernels, out: Float32Array): Float32Array {
    const T = ids.length;
    const H = this.m.config.hidden_size;
    const ws = this.run(ids, cache, kernels, NO_SKIP, null);
    this.head(T === 1 ? ws.normed : ws.normed.subarray((T - 1) * H, T * H), out, 1, kernels);
    return out;
  }

  /** The embedding, the blocks and the final norm: ws.normed holds the normed stream [T, H] after. */
  private run(
    ids: ArrayLike<number>,
    cache: KVCache,
    kernels: DecodeKernels,
    skip: ReadonlySet<number>,
    hidden: { layers: number[]; inputs: Float32Array[]; outputs: Float32Array[] } | null,
  ): Workspace {
    const { config } = this.m;
    const T = ids.length;
    const H = config.hidden_size;
    const V = config.vocab_size;
    const offset = cache.length;
    for (let t = 0; t < T; t++) {
      const id = ids[t] as number;
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`forward: token id ${id} at position ${offset + t} is outside the vocabulary [0, ${V})`);
    }
    if (this.workspace?.positions !== T) this.workspace = new Workspace(T, config);
    const ws = this.workspace;
    const outer = this.modelWeights();
    const embed = outer.embed.values(kernels);
    const x = ws.x;
    for (let t = 0; t < T; t++) {
      const id = ids[t] as number;
      x.set(embed.subarray(id * H, (id + 1) * H), t * H);
    }
    const { cos, sin } = this.m.rope.arrays(offset, T);
    for (let i = 0; i < config.num_hidden_layers; i++) {
      if (skip.has(i)) continue;
      // The stream is updated in place: what is captured is a copy.
      if (hidden) hidden.inputs.push(x.slice());
      this.block(i, ws, T, cos, sin, cache, kernels);
      if (hidden) {
        hidden.layers.push(i);
        hidden.outputs.push(x.slice());
      }
    }
    kernels.rmsNorm(x, outer.finalNorm.values(kernels), ws.normed, config.rms_norm_eps);
    return ws;
  }

  /** The LM head (or the tied embedding) on `rows` normed rows into `out` [rows, V]. */
  private head(normed: Float32Array, out: Float32Array, rows: number, kernels: DecodeKernels): void {
    const { hidden_size: H, vocab_size: V } = this.m.config;
    const outer = this.modelWeights();
    if (outer.head) kernels.linear(normed, outer.head.values(kernels), null, out, rows, H, V);
    else kernels.linear(normed, outer.embed.values(kernels), null, out, rows, H, V, true);
  }

  private modelWeights(): ModelWeights {
    this.outer ??= {
      embed: new WeightRef(this.m.param(EMBED)),
      finalNorm: new WeightRef(this.m.param(FINAL_NORM)),
      head: this.m.config.tie_word_embeddings ? null : new WeightRef(this.m.param(LM_HEAD)),
    };
    return this.outer;
  }

  private blockWeights(i: number): BlockWeights {
    let w = this.weights[i];
    if (w) return w;
    const p = (suffix: string) => new WeightRef(this.m.param(layerPrefix(i) + suffix));
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

  /** RMSNorm of h into `into`, a constant scale folded into the weight as LlamaModel.block does. */
  private norm(h: Float32Array, weight: WeightRef, scale: number, into: Float32Array, kernels: DecodeKernels): Float32Array {
    kernels.rmsNorm(h, weight.scaled(kernels, scale), into, this.m.config.rms_norm_eps);
    return into;
  }

  /** A sublayer's output times its LayerScale / SkipInit gate, when the scheme has one. */
  private gate(y: Float32Array, gate: WeightRef | null, kernels: DecodeKernels): Float32Array {
    if (gate) gateInPlace(y, gate.values(kernels));
    return y;
  }

  /** x [T, K] W [K, N] (+ b) into y [T, N]. */
  private linear(x: Float32Array, weight: WeightRef, bias: WeightRef | null, y: Float32Array, T: number, K: number, N: number, kernels: DecodeKernels): Float32Array {
    kernels.linear(x, weight.values(kernels), bias ? bias.values(kernels) : null, y, T, K, N);
    return y;
  }

  /** One block on the stream ws.x, in place; the same steps as LlamaModel.block. */
  private block(i: number, ws: Workspace, T: number, cos: Float32Array, sin: Float32Array, cache: KVCache, kernels: DecodeKernels): void {
    const plan = this.m.plans[i] as BlockPlan;
    const w = this.blockWeights(i);
    const x = ws.x;
    const rs = plan.residualScale;
    switch (plan.wiring) {
      case 'pre':
        this.gate(this.attention(i, w, this.norm(x, w.attnNorm, plan.normScale, ws.normed, kernels), T, ws, cos, sin, cache, kernels), w.attnGate, kernels);
        addResidualInPlace(x, rs, ws.out);
        this.gate(this.mlp(w, this.norm(x, w.mlpNorm, plan.normScale, ws.normed, kernels), T, ws, kernels), w.mlpGate, kernels);
        addResidualInPlace(x, rs, ws.out);
        return;
      case 'post':
        this.gate(this.attention(i, w, x, T, ws, cos, sin, cache, kernels), w.attnGate, kernels);
        addResidual(ws.sum, x, rs, ws.out);
        this.norm(ws.sum, w.attnNorm, 1, x, kernels);
        this.gate(this.mlp(w, x, T, ws, kernels), w.mlpGate, kernels);
        addResidual(ws.sum, x, rs, ws.out);
        this.norm(ws.sum, w.mlpNorm, 1, x, kernels);
        return;
      case 'sandwich':
        this.attention(i, w, this.norm(x, w.attnNorm, plan.normScale, ws.normed, kernels), T, ws, cos, sin, cache, kernels);
        this.gate(this.norm(ws.out, w.attnOutNorm!, 1, ws.normed, kernels), w.attnGate, kernels);
        addResidualInPlace(x, rs, ws.normed);
        this.mlp(w, this.norm(x, w.mlpNorm, plan.normScale, ws.normed, kernels), T, ws, kernels);
        this.gate(this.norm(ws.out, w.mlpOutNorm!, 1, ws.normed, kernels), w.mlpGate, kernels);
        addResidualInPlace(x, rs, ws.normed);
        return;
    }
  }

  /** Self-attention of the normed stream x into ws.out, the cache extended in place. */
  private attention(i: number, w: BlockWeights, x: Float32Array, T: number, ws: Workspace, cos: Float32Array, sin: Float32Array, cache: KVCache, kernels: DecodeKernels): Float32Array {
    const { config } = this.m;
    const H = config.hidden_size;
    const nH = config.num_attention_heads;
    const nKV = config.num_key_value_heads;
    const hd = headDim(config);
    let q = this.linear(x, w.q, w.qBias, ws.q, T, H, nH * hd, kernels);
    let k = this.linear(x, w.k, w.kBias, ws.k, T, H, nKV * hd, kernels);
    const v = this.linear(x, w.v, w.vBias, ws.v, T, H, nKV * hd, kernels);
    // Qwen3: each head of q and k normalised over head_dim before the rotary embedding.
    if (w.qNorm) q = this.norm(q, w.qNorm, 1, ws.qNormed, kernels);
    if (w.kNorm) k = this.norm(k, w.kNorm, 1, ws.kNormed, kernels);
    const offset = cache.length;
    const layer = cache.layerArrays(i, nKV, hd, offset + T);
    kernels.attendCached({
      q, k, v, kCache: layer.k, vCache: layer.v, out: ws.context, cos, sin,
      positions: T, offset, heads: nH, kvHeads: nKV, headDim: hd, capacity: layer.capacity,
      scale: 1 / Math.sqrt(hd), window: this.m.windows[i] ?? null,
    });
    return this.linear(ws.context, w.o, w.oBias, ws.out, T, nH * hd, H, kernels);
  }

  /** The SwiGLU MLP of the normed stream x into ws.out. */
  private mlp(w: BlockWeights, x: Float32Array, T: number, ws: Workspace, kernels: DecodeKernels): Float32Array {
    const H = this.m.config.hidden_size;
    const I = this.m.config.intermediate_size;
    this.linear(x, w.gate, w.gateBias, ws.gate, T, H, I, kernels);
    this.linear(x, w.up, w.upBias, ws.up, T, H, I, kernels);
    kernels.swiGlu(ws.gate, ws.up, ws.hidden); // silu(gate) * up
    return this.linear(ws.hidden, w.down, w.downBias, ws.out, T, I, H, kernels);
  }
}
