import * as tf from '@tensorflow/tfjs';
import { causalAttention, crossEntropy, nativeDecodeKernels, swiGlu, tidyValues, type DecodeKernels } from '@deepen/backend';
import { Rng } from '@deepen/core';
import { rmsNorm, type BlockPlan, type InitSpec, type NormScheme, type ParamRole } from '@deepen/norms';
import { familyOf, headDim, layerDepth, schemeOf, type LlamaConfig } from './config.js';
import type { BlockBiases } from './families.js';
import type { KVCache } from './kv-cache.js';
import { BLOCK, EMBED, FINAL_NORM, LM_HEAD, layerPrefix } from './names.js';
import { ArrayForward } from './native-decode.js';
import { countParameters, type ParameterCount } from './presets.js';
import { applyRope, RotaryTable } from './rope.js';

export interface ForwardOptions {
  /** 0-based indices of blocks to skip (run as identity), without copying any weights. */
  skipLayers?: Iterable<number>;
  /** Return every executed block's input and output hidden states (caller disposes them). */
  captureHidden?: boolean;
  /**
   * Decode with a KV cache: positions continue from `cache.length`, and the cache is extended.
   * On the native engine with a batch of one (and a cache of storage 'auto') the forward runs
   * on arrays through the engine's decode kernels instead of tfjs ops; same logits.
   */
  cache?: KVCache;
}

export interface HiddenStates {
  /** 0-based indices of the blocks that ran, in order. */
  layers: number[];
  /** Residual stream entering each of those blocks, [batch, seq, hidden]. */
  inputs: tf.Tensor3D[];
  /** Residual stream leaving each of those blocks. */
  outputs: tf.Tensor3D[];
}

export interface ForwardResult {
  logits: tf.Tensor3D;
  hidden?: HiddenStates;
}

export interface LossOptions extends Omit<ForwardOptions, 'cache' | 'captureHidden'> {
  /** Target ids [batch, seq]. Default: the inputs shifted left (next-token prediction), last position ignored. */
  targets?: tf.Tensor2D;
  /** 1 where a position counts, 0 where it does not, [batch, seq]. */
  mask?: tf.Tensor2D;
  /** Targets equal to this are ignored. Default -100, as in PyTorch / Hugging Face. */
  ignoreIndex?: number;
}

/**
 * Cross-entropy of every position from logits [batch, seq, vocab] and target ids
 * [batch, seq], computed as logsumexp(logits) - logit[target] (never materialising the
 * softmax); 0 where the target is `ignoreIndex`.
 */
export function tokenCrossEntropy(logits: tf.Tensor3D, targets: tf.Tensor2D, ignoreIndex = -100): tf.Tensor2D {
  return tf.tidy(() => {
    const [batch, seq, V] = logits.shape;
    const n = batch * seq;
    const losses = crossEntropy(tf.reshape(logits, [n, V]) as tf.Tensor2D, tf.reshape(targets, [n]) as tf.Tensor1D, ignoreIndex);
    return tf.reshape(losses, [batch, seq]) as tf.Tensor2D;
  });
}

/** The role of a block tensor for the scheme's init rules. */
const ROLE_OF: Record<string, ParamRole> = {
  [BLOCK.q]: 'q_proj',
  [BLOCK.k]: 'k_proj',
  [BLOCK.v]: 'v_proj',
  [BLOCK.o]: 'o_proj',
  [BLOCK.gate]: 'gate_proj',
  [BLOCK.up]: 'up_proj',
  [BLOCK.down]: 'down_proj',
};

/** The tensors a block owns under its plan, with their shapes ([in, out] for linears). */
export function blockTensorShapes(config: LlamaConfig, plan: BlockPlan): Array<[string, number[]]> {
  const H = config.hidden_size;
  const hd = headDim(config);
  const q = config.num_attention_heads * hd;
  const kv = config.num_key_value_heads * hd;
  const I = config.intermediate_size;
  const shapes: Array<[string, number[]]> = [
    [BLOCK.attnNorm, [H]],
    [BLOCK.q, [H, q]],
    [BLOCK.k, [H, kv]],
    [BLOCK.v, [H, kv]],
    [BLOCK.o, [q, H]],
    [BLOCK.mlpNorm, [H]],
    [BLOCK.gate, [H, I]],
    [BLOCK.up, [H, I]],
    [BLOCK.down, [I, H]],
  ];
  // What the family adds: projection biases (sized like the projection's output) and q/k norms.
  const family = familyOf(config);
  const bias = family.biases(config);
  const biasShapes: Array<[keyof BlockBiases, string, number]> = [
    ['q', BLOCK.qBias, q],
    ['k', BLOCK.kBias, kv],
    ['v', BLOCK.vBias, kv],
    ['o', BLOCK.oBias, H],
    ['gate', BLOCK.gateBias, I],
    ['up', BLOCK.upBias, I],
    ['down', BLOCK.downBias, H],
  ];
  for (const [which, name, size] of biasShapes) if (bias[which]) shapes.push([name, [size]]);
  if (family.qkNorm) shapes.push([BLOCK.qNorm, [hd]], [BLOCK.kNorm, [hd]]);
  if (plan.wiring === 'sandwich') shapes.push([BLOCK.attnOutNorm, [H]], [BLOCK.mlpOutNorm, [H]]);
  if (plan.gate.kind !== 'none') {
    const gateShape = plan.gate.kind === 'layerscale' ? [H] : [1];
    shapes.push([BLOCK.attnGate, gateShape], [BLOCK.mlpGate, gateShape]);
  }
  return shapes;
}

/** Every tensor name and shape the model holds, in a fixed order. */
export function modelTensorShapes(config: LlamaConfig, scheme: NormScheme = schemeOf(config)): Array<[string, number[]]> {
  const H = config.hidden_size;
  const out: Array<[string, number[]]> = [[EMBED, [config.vocab_size, H]]];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    for (const [suffix, shape] of blockTensorShapes(config, scheme.block(layerDepth(config, i)))) out.push([layerPrefix(i) + suffix, shape]);
  }
  out.push([FINAL_NORM, [H]]);
  if (!config.tie_word_embeddings) out.push([LM_HEAD, [H, config.vocab_size]]);
  return out;
}

/** Exact parameter count of a config under its scheme (extra norms and gates included), without building the model. */
export function parameterCountOf(config: LlamaConfig): ParameterCount {
  const scheme = schemeOf(config);
  const plans = Array.from({ length: config.num_hidden_layers }, (_, i) => scheme.block(layerDepth(config, i)));
  return countParameters(config, {
    normsPerBlock: plans.map((p) => (p.wiring === 'sandwich' ? 4 : 2)),
    gateParams: plans.map((p) => (p.gate.kind === 'layerscale' ? 2 * config.hidden_size : p.gate.kind === 'scalar' ? 2 : 0)),
  });
}

function drawInit(rng: Rng, shape: number[], spec: InitSpec): Float32Array {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  if (spec.kind === 'normal') return rng.fillNormal(values, 0, spec.std);
  const [fanIn, fanOut] = shape as [number, number];
  return rng.fillNormal(values, 0, spec.gain * Math.sqrt(2 / (fanIn + fanOut)));
}

/**
 * A LLaMA decoder whose blocks are wired by a normalization scheme. Parameters live in
 * `params`, keyed by Hugging Face tensor names; linear weights are stored [in, out] (the
 * transpose of the checkpoint layout) so every projection is a plain 2-D matmul.
 */
export class LlamaModel {
  readonly scheme: NormScheme;
  private readonly plans: BlockPlan[];
  private readonly rope: RotaryTable;
  /** Per layer: the family's biases, and its attention window (null: full causal). */
  private readonly biases: BlockBiases;
  private readonly qkNorm: boolean;
  private readonly windows: Array<number | null>;
  /** The cached batch-1 forward on the native engine's decode kernels. */
  private readonly arrays: ArrayForward;

  private constructor(
    readonly config: LlamaConfig,
    readonly params: Map<string, tf.Variable>,
  ) {
    this.scheme = schemeOf(config);
    this.plans = Array.from({ length: config.num_hidden_layers }, (_, i) => this.scheme.block(layerDepth(config, i)));
    this.rope = new RotaryTable(headDim(config), config.rope_theta, config.rope_scaling, config.max_position_embeddings);
    const family = familyOf(config);
    this.biases = family.biases(config);
    this.qkNorm = family.qkNorm;
    this.windows = family.windows(config);
    this.arrays = new ArrayForward({
      config,
      plans: this.plans,
      rope: this.rope,
      biases: this.biases,
      qkNorm: this.qkNorm,
      windows: this.windows,
      param: (name) => this.param(name),
    });
  }

  /** A freshly initialised model; the same seed gives the same weights on every engine. */
  static create(config: LlamaConfig, options: { seed?: number | string } = {}): LlamaModel {
    const scheme = schemeOf(config);
    const root = Rng.fromSeed(options.seed ?? 0);
    const base = config.initializer_range;
    const params = new Map<string, tf.Variable>();
    for (const [name, shape] of modelTensorShapes(config, scheme)) {
      const rng = root.fork(name);
      let values: Float32Array;
      const layerMatch = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
      if (name === EMBED) values = drawInit(rng, shape, scheme.init('embed', null, base));
      else if (name === LM_HEAD) values = drawInit(rng, shape, scheme.init('lm_head', null, base));
      else if (name === FINAL_NORM) values = new Float32Array(shape[0] as number).fill(1);
      else {
        const index = Number(layerMatch![1]);
        const suffix = layerMatch![2] as string;
        const depth = layerDepth(config, index);
        const role = ROLE_OF[suffix];
        if (role) values = drawInit(rng, shape, scheme.init(role, depth, base));
        else if (suffix.endsWith('.bias')) values = new Float32Array(shape[0] as number); // biases start at zero, as in transformers
        else if (suffix === BLOCK.attnGate || suffix === BLOCK.mlpGate) {
          const gate = scheme.block(depth).gate;
          values = new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(gate.kind === 'none' ? 1 : gate.init);
        } else values = new Float32Array(shape[0] as number).fill(1); // norm weights
      }
      params.set(name, newVariable(() => tf.tensor(values, shape, 'float32'), name));
    }
    return new LlamaModel(config, params);
  }

  /**
   * A model from named tensors in deepen's layout ([in, out] linears). The tensors are copied
   * into new variables; the caller keeps ownership of what it passed.
   */
  static fromTensors(config: LlamaConfig, tensors: Map<string, tf.Tensor>, source = 'tensors'): LlamaModel {
    const expected = modelTensorShapes(config);
    const problems: string[] = [];
    for (const [name, shape] of expected) {
      const t = tensors.get(name);
      if (!t) problems.push(`missing tensor ${name}`);
      else if (t.shape.join(',') !== shape.join(',')) problems.push(`tensor ${name} has shape [${t.shape}], expected [${shape}]`);
    }
    const known = new Set(expected.map(([n]) => n));
    const unexpected = [...tensors.keys()].filter((n) => !known.has(n));
    if (unexpected.length > 0) problems.push(`unexpected tensors for norm scheme '${config.deepen.norm_scheme}': ${unexpected.join(', ')}`);
    if (problems.length > 0) throw new Error(`${source}: ${problems.join('; ')}`);
    const params = new Map<string, tf.Variable>();
    for (const [name] of expected) params.set(name, newVariable(() => tensors.get(name)!.toFloat(), name));
    return new LlamaModel(config, params);
  }

  param(name: string): tf.Variable {
    const p = this.params.get(name);
    if (!p) throw new Error(`model has no parameter ${name}`);
    return p;
  }

  /** The block plan (wiring, scales, gates) of layer `index` (0-based). */
  plan(index: number): BlockPlan {
    return this.plans[index] as BlockPlan;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.params.values()];
  }

  parameterCount(): ParameterCount {
    return parameterCountOf(this.config);
  }

  /** Throws unless positions offset..offset+seq-1 exist for this model. */
  private checkPositions(offset: number, seq: number, caller: string): void {
    if (seq < 1) throw new Error(`${caller}: the input has no positions`);
    if (offset + seq > this.config.max_position_embeddings && !this.rope.extendsContext) {
      throw new Error(`${caller}: positions ${offset}..${offset + seq - 1} exceed max_position_embeddings (${this.config.max_position_embeddings})`);
    }
  }

  /**
   * The decode kernels when `cache` can hold this batch in arrays (the native engine, a batch
   * of one, storage 'auto'), else null; settles the cache's storage either way.
   */
  private arrayKernels(cache: KVCache, batch: number): DecodeKernels | null {
    // A step of one token is a few dozen small ops: on arrays it skips tfjs's dispatch of each
    // and writes the cache in place instead of copying it into a new tensor.
    const kernels = batch === 1 && cache.storage === 'auto' && cache.layout !== 'tensors' ? nativeDecodeKernels() : null;
    cache.settle(kernels ? 'arrays' : 'tensors');
    return kernels;
  }

  /** Logits for every position, plus hidden states when asked. Runs inside its own tidy scope. */
  forward(inputIds: tf.Tensor2D | number[][], options: ForwardOptions = {}): ForwardResult {
    const ids = Array.isArray(inputIds) ? null : inputIds;
    const [batch, seq] = ids ? (ids.shape as [number, number]) : [(inputIds as number[][]).length, (inputIds as number[][])[0]?.length ?? 0];
    const offset = options.cache?.length ?? 0;
    this.checkPositions(offset, seq, 'forward');
    const skip = new Set(options.skipLayers ?? []);
    for (const i of skip) {
      if (!Number.isInteger(i) || i < 0 || i >= this.config.num_hidden_layers) {
        throw new Error(`forward: skipLayers has ${i}, outside 0..${this.config.num_hidden_layers - 1}`);
      }
    }
    const kernels = options.cache ? this.arrayKernels(options.cache, batch) : null;
    if (options.cache && kernels) {
      const row = ids ? ids.dataSync() : (inputIds as number[][])[0]!;
      const result = this.arrays.forward(row, options.cache, kernels, skip, options.captureHidden === true);
      options.cache.length = offset + seq;
      return result;
    }
    const result = tf.tidy(() => {
      const idTensor = ids ?? tf.tensor2d(inputIds as number[][], [batch, seq], 'int32');
      const H = this.config.hidden_size;
      let x = tf.reshape(tf.gather(this.param(EMBED), tf.reshape(idTensor, [-1])), [batch, seq, H]) as tf.Tensor3D;
      const { cos, sin } = this.rope.slice(offset, seq);
      const captured: { layers: number[]; inputs: tf.Tensor3D[]; outputs: tf.Tensor3D[] } = { layers: [], inputs: [], outputs: [] };
      for (let i = 0; i < this.config.num_hidden_layers; i++) {
        if (skip.has(i)) continue;
        const out = this.block(i, x, cos, sin, options.cache);
        if (options.captureHidden) {
          captured.layers.push(i);
          captured.inputs.push(x);
          captured.outputs.push(out);
        }
        x = out;
      }
      const normed = rmsNorm(x, this.param(FINAL_NORM), this.config.rms_norm_eps);
      const flat = tf.reshape(normed, [batch * seq, H]);
      // A tied head reads the embedding [vocab, hidden] transposed in place: tf.transpose would
      // copy the whole embedding every forward.
      const logits2d = this.config.tie_word_embeddings
        ? tf.matMul(flat, this.param(EMBED), false, true)
        : tf.matMul(flat, this.param(LM_HEAD));
      const logits = tf.reshape(logits2d, [batch, seq, this.config.vocab_size]) as tf.Tensor3D;
      return { logits, inputs: captured.inputs, outputs: captured.outputs, layers: tf.tensor1d(captured.layers, 'int32') };
    });
    if (options.cache) options.cache.length = offset + seq;
    const layers = Array.from(result.layers.dataSync());
    result.layers.dispose();
    return options.captureHidden
      ? { logits: result.logits, hidden: { layers, inputs: result.inputs, outputs: result.outputs } }
      : { logits: result.logits };
  }

  /** Logits only, [batch, seq, vocab]. */
  logits(inputIds: tf.Tensor2D | number[][], options: Omit<ForwardOptions, 'captureHidden'> = {}): tf.Tensor3D {
    return this.forward(inputIds, options).logits;
  }

  /**
   * The logits of the last of `tokens` (one sequence, continuing `cache`, which it extends) as
   * an array, written into `out` [vocab] when given: one step of generate(). Where the cache
   * holds arrays (the native engine) no tensor is made, and the LM head runs for that
   * position alone; elsewhere it is the last row of logits().
   */
  decodeLogits(tokens: ArrayLike<number>, cache: KVCache, out?: Float32Array): Float32Array {
    const seq = tokens.length;
    const V = this.config.vocab_size;
    if (out && out.length !== V) throw new Error(`decodeLogits: out holds ${out.length} values, the vocabulary ${V}`);
    this.checkPositions(cache.length, seq, 'decodeLogits');
    const kernels = this.arrayKernels(cache, 1);
    if (kernels) {
      const offset = cache.length;
      const result = this.arrays.lastLogits(tokens, cache, kernels, out ?? new Float32Array(V));
      cache.length = offset + seq;
      return result;
    }
    const logits = this.logits([Array.from(tokens)], { cache });
    try {
      const last = (seq === 1 ? logits.dataSync() : tidyValues(() => tf.slice(logits, [0, seq - 1, 0], [1, 1, -1]))) as Float32Array;
      // Disposing the tensor leaves its values to the caller alone.
      if (!out) return last;
      out.set(last);
      return out;
    } finally {
      logits.dispose();
    }
  }

  /**
   * Cross-entropy of every position, [batch, seq], computed as logsumexp(logits) - logit[target]
   * (never materialising the softmax); 0 where the target is `ignoreIndex`. Targets default
   * to the inputs shifted left (next-token prediction), the last position ignored.
   */
  tokenLosses(inputIds: tf.Tensor2D, options: Omit<LossOptions, 'mask'> = {}): tf.Tensor2D {
    const ignore = options.ignoreIndex ?? -100;
    return tf.tidy(() => {
      const { logits } = this.forward(inputIds, { ...(options.skipLayers ? { skipLayers: options.skipLayers } : {}) });
      const [batch, seq] = inputIds.shape;
      const targets =
        options.targets ??
        (tf.concat([tf.slice(inputIds, [0, 1], [batch, seq - 1]), tf.fill([batch, 1], ignore, 'int32')], 1) as tf.Tensor2D);
      if (targets.shape.join(',') !== inputIds.shape.join(',')) {
        throw new Error(`loss: targets shape [${targets.shape}] differs from inputs [${inputIds.shape}]`);
      }
      return tokenCrossEntropy(logits, targets, ignore);
    });
  }

  /** Mean cross-entropy over the positions that count (target not `ignoreIndex`, mask 1). */
  loss(inputIds: tf.Tensor2D, options: LossOptions = {}): tf.Scalar {
    const ignore = options.ignoreIndex ?? -100;
    return tf.tidy(() => {
      const { mask, ...rest } = options;
      const losses = this.tokenLosses(inputIds, rest);
      const [batch, seq] = inputIds.shape;
      const targets = options.targets ?? tf.concat([tf.slice(inputIds, [0, 1], [batch, seq - 1]), tf.fill([batch, 1], ignore, 'int32')], 1);
      let weights = tf.cast(tf.notEqual(targets, ignore), 'float32');
      if (mask) weights = tf.mul(weights, tf.cast(mask, 'float32'));
      return tf.div(tf.sum(tf.mul(losses, weights)), tf.maximum(tf.sum(weights), 1)) as tf.Scalar;
    });
  }

  private block(i: number, x: tf.Tensor3D, cos: tf.Tensor, sin: tf.Tensor, cache?: KVCache): tf.Tensor3D {
    const plan = this.plans[i] as BlockPlan;
    const p = (suffix: string) => this.param(layerPrefix(i) + suffix);
    const eps = this.config.rms_norm_eps;
    // LNS and friends multiply a norm's output by a constant: fold it into the weight, which is
    // an [H] multiply instead of a [B, T, H] one and gives identical gradients.
    const norm = (h: tf.Tensor, suffix: string, scale: number) => rmsNorm(h, scale === 1 ? p(suffix) : tf.mul(p(suffix), scale), eps);
    const gate = (y: tf.Tensor, suffix: string) => (plan.gate.kind === 'none' ? y : tf.mul(y, p(suffix)));
    const residual = (h: tf.Tensor) => (plan.residualScale === 1 ? h : tf.mul(h, plan.residualScale));
    const attention = (h: tf.Tensor) => this.attention(i, h as tf.Tensor3D, cos, sin, cache);
    const mlp = (h: tf.Tensor) => this.mlp(i, h as tf.Tensor3D);

    let h: tf.Tensor;
    let y: tf.Tensor;
    switch (plan.wiring) {
      case 'pre':
        h = tf.add(residual(x), gate(attention(norm(x, BLOCK.attnNorm, plan.normScale)), BLOCK.attnGate));
        y = tf.add(residual(h), gate(mlp(norm(h, BLOCK.mlpNorm, plan.normScale)), BLOCK.mlpGate));
        break;
      case 'post':
        h = norm(tf.add(residual(x), gate(attention(x), BLOCK.attnGate)), BLOCK.attnNorm, 1);
        y = norm(tf.add(residual(h), gate(mlp(h), BLOCK.mlpGate)), BLOCK.mlpNorm, 1);
        break;
      case 'sandwich':
        h = tf.add(residual(x), gate(norm(attention(norm(x, BLOCK.attnNorm, plan.normScale)), BLOCK.attnOutNorm, 1), BLOCK.attnGate));
        y = tf.add(residual(h), gate(norm(mlp(norm(h, BLOCK.mlpNorm, plan.normScale)), BLOCK.mlpOutNorm, 1), BLOCK.mlpGate));
        break;
    }
    return y as tf.Tensor3D;
  }

  /** x W (+ b where the family has that bias). */
  private project(i: number, x: tf.Tensor2D, weight: string, bias: keyof BlockBiases, biasName: string): tf.Tensor2D {
    const y = tf.matMul(x, this.param(layerPrefix(i) + weight));
    return this.biases[bias] ? (tf.add(y, this.param(layerPrefix(i) + biasName)) as tf.Tensor2D) : (y as tf.Tensor2D);
  }

  private attention(i: number, x: tf.Tensor3D, cos: tf.Tensor, sin: tf.Tensor, cache?: KVCache): tf.Tensor3D {
    const [B, T, H] = x.shape;
    const nH = this.config.num_attention_heads;
    const nKV = this.config.num_key_value_heads;
    const hd = headDim(this.config);
    const p = (suffix: string) => this.param(layerPrefix(i) + suffix);
    const flat = tf.reshape(x, [B * T, H]) as tf.Tensor2D;
    // Qwen3 normalises each head of q and k over head_dim before the rotary embedding.
    const headNorm = (t: tf.Tensor, suffix: string) => (this.qkNorm ? rmsNorm(t, p(suffix), this.config.rms_norm_eps) : t);
    const heads = (t: tf.Tensor, n: number, norm?: string) => tf.transpose(norm ? headNorm(tf.reshape(t, [B, T, n, hd]), norm) : tf.reshape(t, [B, T, n, hd]), [0, 2, 1, 3]);
    const q = applyRope(heads(this.project(i, flat, BLOCK.q, 'q', BLOCK.qBias), nH, BLOCK.qNorm), cos, sin);
    let k = applyRope(heads(this.project(i, flat, BLOCK.k, 'k', BLOCK.kBias), nKV, BLOCK.kNorm), cos, sin) as tf.Tensor4D;
    let v = heads(this.project(i, flat, BLOCK.v, 'v', BLOCK.vBias), nKV) as tf.Tensor4D;
    if (cache) {
      const past = cache.get(i);
      if (past) {
        k = tf.concat([past.k, k], 2);
        v = tf.concat([past.v, v], 2);
      }
      cache.set(i, k, v);
    }
    // Causal, grouped-query (query head h reads kv head h / (nH / nKV)); the queries sit after
    // the k.shape[2] - T positions already in the cache; a sliding layer sees its window only.
    const window = this.windows[i] ?? null;
    const context = causalAttention(q as tf.Tensor4D, k, v, { scale: 1 / Math.sqrt(hd), offset: k.shape[2] - T, ...(window !== null ? { window } : {}) });
    const merged = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [B * T, nH * hd]) as tf.Tensor2D;
    return tf.reshape(this.project(i, merged, BLOCK.o, 'o', BLOCK.oBias), [B, T, H]) as tf.Tensor3D;
  }

  private mlp(i: number, x: tf.Tensor3D): tf.Tensor3D {
    const [B, T, H] = x.shape;
    const flat = tf.reshape(x, [B * T, H]) as tf.Tensor2D;
    const gate = this.project(i, flat, BLOCK.gate, 'gate', BLOCK.gateBias);
    const up = this.project(i, flat, BLOCK.up, 'up', BLOCK.upBias);
    const hidden = swiGlu(gate, up) as tf.Tensor2D; // silu(gate) * up
    return tf.reshape(this.project(i, hidden, BLOCK.down, 'down', BLOCK.downBias), [B, T, H]) as tf.Tensor3D;
  }

  dispose(): void {
    tf.dispose([...this.params.values()]);
    this.rope.dispose();
    this.arrays.release();
    this.params.clear();
  }
}

/**
 * A trainable variable that owns its data. tf.variable(t) shares t's buffer and leaves t
 * alive, so the initial tensor is made and released inside one tidy scope.
 */
function newVariable(initial: () => tf.Tensor, name: string): tf.Variable {
  return tf.tidy(() => tf.variable(initial(), true, uniqueVariableName(name)));
}

let variableCounter = 0;
/** tfjs variable names are global; several models (or the same model loaded twice) must not collide. */
function uniqueVariableName(name: string): string {
  variableCounter += 1;
  return `${name}#${variableCounter}`;
}

/**
 * The same weights under another normalization scheme, for continued pretraining (e.g. LNS on
 * a pretrained Pre-LN Llama). Tensors the new scheme adds (sandwich output norms, LayerScale /
 * SkipInit gates) start as the scheme initialises them; a tensor the new scheme has no place
 * for is refused by name rather than dropped. The original model is untouched.
 */
export function withScheme(model: LlamaModel, deepen: Partial<LlamaConfig['deepen']> & { norm_scheme: string }, options: { seed?: number | string } = {}): LlamaModel {
  const kept = { ...model.config.deepen };
  // What described the old scheme's export no longer holds for the new one.
  for (const key of ['norm_scheme', 'mix_post_layers', 'layer_scale_init', 'stock_runtime_compatible', 'note', 'folded_from'] as const) delete kept[key];
  const config: LlamaConfig = { ...model.config, deepen: { ...kept, ...deepen } };
  const wanted = modelTensorShapes(config);
  const names = new Set(wanted.map(([n]) => n));
  const orphans = [...model.params.keys()].filter((n) => !names.has(n));
  if (orphans.length > 0) {
    throw new Error(`norm scheme '${deepen.norm_scheme}' has no place for ${orphans.join(', ')} of the '${model.scheme.name}' model; fold it first (pretrain publish --dry-run writes a folded copy)`);
  }
  const missing = wanted.filter(([n]) => !model.params.has(n));
  const fresh = missing.length > 0 ? LlamaModel.create(config, options) : null;
  try {
    const tensors = new Map<string, tf.Tensor>();
    for (const [name] of wanted) tensors.set(name, model.params.get(name) ?? fresh!.param(name));
    return LlamaModel.fromTensors(config, tensors, `'${deepen.norm_scheme}' model`);
  } finally {
    fresh?.dispose();
  }
}
