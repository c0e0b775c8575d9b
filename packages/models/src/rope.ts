import * as tf from '@tensorflow/tfjs';
import { applyRope as applyRopeOp, composite } from '@deepen/backend';

/**
 * Rotary scaling as transformers' modeling_rope_utils computes it, for the types deepen
 * implements. Every other type (longrope, ntk, mrope, ...) is refused by name at load.
 */
export type RopeScaling =
  | { rope_type: 'linear'; factor: number }
  | { rope_type: 'dynamic'; factor: number }
  | { rope_type: 'llama3'; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number }
  | {
      rope_type: 'yarn';
      factor: number;
      original_max_position_embeddings?: number;
      attention_factor?: number;
      beta_fast?: number;
      beta_slow?: number;
      truncate?: boolean;
    };

export const ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3', 'yarn'] as const;

/** The keys each rope type takes in config.json (besides rope_type / type / rope_theta). */
const ROPE_KEYS: Record<RopeScaling['rope_type'], { required: string[]; optional: string[] }> = {
  linear: { required: ['factor'], optional: [] },
  dynamic: { required: ['factor'], optional: ['original_max_position_embeddings'] },
  llama3: { required: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'], optional: [] },
  yarn: { required: ['factor'], optional: ['original_max_position_embeddings', 'attention_factor', 'beta_fast', 'beta_slow', 'truncate'] },
};

/**
 * Reads a `rope_scaling` object (or the scaling part of transformers v5's `rope_parameters`):
 * null for plain rotary, or the scaling; unknown types, unknown keys and values transformers
 * versions disagree on are refused by name.
 */
export function parseRopeScaling(raw: unknown, where: string, maxPositions: number): RopeScaling | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${where} must be an object or null, got ${JSON.stringify(raw)}`);
  const r = { ...(raw as Record<string, unknown>) };
  const type = r.rope_type ?? r.type ?? 'default';
  if (r.rope_type !== undefined && r.type !== undefined && r.rope_type !== r.type) throw new Error(`${where}: rope_type '${String(r.rope_type)}' and type '${String(r.type)}' disagree`);
  delete r.rope_type;
  delete r.type;
  delete r.rope_theta;
  if (type === 'default') {
    const extra = Object.keys(r);
    if (extra.length > 0) throw new Error(`${where}: rope type 'default' takes no ${extra.join(', ')}`);
    return null;
  }
  if (typeof type !== 'string' || !Object.hasOwn(ROPE_KEYS, type)) {
    throw new Error(`${where}: rope type '${String(type)}' is not implemented (deepen implements ${ROPE_TYPES.join(', ')})`);
  }
  const spec = ROPE_KEYS[type as RopeScaling['rope_type']];
  const missing = spec.required.filter((k) => r[k] === undefined || r[k] === null);
  if (missing.length > 0) throw new Error(`${where}: rope type '${type}' needs ${missing.join(', ')}`);
  // mscale / mscale_all_dim are DeepSeek-V2/V3's yarn (MLA models, not implemented); any other key would change the math unseen.
  const unknown = Object.keys(r).filter((k) => !spec.required.includes(k) && !spec.optional.includes(k) && r[k] !== null);
  if (unknown.length > 0) throw new Error(`${where}: rope type '${type}' does not take ${unknown.join(', ')} (not implemented)`);
  for (const [k, v] of Object.entries(r)) {
    if (v === null || k === 'truncate') continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`${where}.${k} must be a positive number, got ${JSON.stringify(v)}`);
  }
  if (r.truncate !== undefined && r.truncate !== null && typeof r.truncate !== 'boolean') throw new Error(`${where}.truncate must be true or false, got ${JSON.stringify(r.truncate)}`);
  const factor = r.factor as number;
  switch (type) {
    case 'linear':
      return { rope_type: 'linear', factor };
    case 'dynamic': {
      const original = r.original_max_position_embeddings;
      // transformers' dynamic NTK scales against max_position_embeddings (its own TODO says so);
      // a different original length would mean different math in different versions.
      if (original !== undefined && original !== null && original !== maxPositions) {
        throw new Error(`${where}: dynamic rope with original_max_position_embeddings ${String(original)} != max_position_embeddings ${maxPositions} is not implemented`);
      }
      return { rope_type: 'dynamic', factor };
    }
    case 'llama3': {
      const s = { rope_type: 'llama3' as const, factor, low_freq_factor: r.low_freq_factor as number, high_freq_factor: r.high_freq_factor as number, original_max_position_embeddings: r.original_max_position_embeddings as number };
      if (s.high_freq_factor <= s.low_freq_factor) throw new Error(`${where}: high_freq_factor (${s.high_freq_factor}) must exceed low_freq_factor (${s.low_freq_factor})`);
      return s;
    }
    default: {
      const original = r.original_max_position_embeddings as number | undefined | null;
      // transformers releases disagree here: some take factor as given, others replace it by
      // max_position_embeddings / original_max_position_embeddings. They agree when the two match.
      if (original !== undefined && original !== null && Math.abs(factor * original - maxPositions) > 1e-9 * maxPositions) {
        throw new Error(
          `${where}: yarn with factor ${factor} and original_max_position_embeddings ${original} (max_position_embeddings ${maxPositions}): transformers versions compute this differently (factor vs max/original); only factor * original == max_position_embeddings is implemented`,
        );
      }
      return {
        rope_type: 'yarn',
        factor,
        ...(original ? { original_max_position_embeddings: original } : {}),
        ...(typeof r.attention_factor === 'number' ? { attention_factor: r.attention_factor } : {}),
        ...(typeof r.beta_fast === 'number' ? { beta_fast: r.beta_fast } : {}),
        ...(typeof r.beta_slow === 'number' ? { beta_slow: r.beta_slow } : {}),
        ...(typeof r.truncate === 'boolean' ? { truncate: r.truncate } : {}),
      };
    }
  }
}

const f32 = Math.fround;

/** inv_freq_i = 1 / theta^(2i/d), in float32 as transformers computes it. */
function defaultInverseFrequencies(headDim: number, theta: number): Float64Array {
  const out = new Float64Array(headDim / 2);
  for (let i = 0; i < out.length; i++) out[i] = f32(1 / f32(theta ** f32((2 * i) / headDim)));
  return out;
}

/**
 * The inverse frequencies and the factor cos/sin are multiplied by (transformers'
 * attention_scaling) for a rope variant. `seqLen` matters only to dynamic NTK, which rescales
 * the base once a forward reaches past max_position_embeddings.
 */
export function inverseFrequencies(
  headDim: number,
  theta: number,
  scaling: RopeScaling | null,
  maxPositions: number,
  seqLen = maxPositions,
): { invFreq: Float64Array; attentionFactor: number } {
  if (scaling === null) return { invFreq: defaultInverseFrequencies(headDim, theta), attentionFactor: 1 };
  const dim = headDim;
  switch (scaling.rope_type) {
    case 'linear':
      return { invFreq: defaultInverseFrequencies(dim, theta).map((f) => f32(f / scaling.factor)), attentionFactor: 1 };
    case 'dynamic': {
      const len = Math.max(seqLen, maxPositions);
      const base = theta * ((scaling.factor * len) / maxPositions - (scaling.factor - 1)) ** (dim / (dim - 2));
      return { invFreq: defaultInverseFrequencies(dim, base), attentionFactor: 1 };
    }
    case 'llama3': {
      const { factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: old } = scaling;
      const lowWavelen = old / low;
      const highWavelen = old / high;
      const invFreq = defaultInverseFrequencies(dim, theta).map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highWavelen) return f; // high frequencies: unchanged
        if (wavelen > lowWavelen) return f32(f / factor); // low frequencies: divided by factor
        const smooth = (old / wavelen - low) / (high - low); // in between: interpolated
        return f32((1 - smooth) * (f / factor) + smooth * f);
      });
      return { invFreq, attentionFactor: 1 };
    }
    case 'yarn': {
      const factor = scaling.factor;
      const original = scaling.original_max_position_embeddings ?? maxPositions;
      const attentionFactor = scaling.attention_factor ?? (factor <= 1 ? 1 : 0.1 * Math.log(factor) + 1);
      const betaFast = scaling.beta_fast || 32;
      const betaSlow = scaling.beta_slow || 1;
      const truncate = scaling.truncate ?? true;
      const correctionDim = (rotations: number) => (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
      let low = correctionDim(betaFast);
      let high = correctionDim(betaSlow);
      if (truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
      const invFreq = new Float64Array(dim / 2);
      for (let i = 0; i < invFreq.length; i++) {
        const posFreq = f32(theta ** f32((2 * i) / dim));
        const extrapolation = f32(1 / posFreq);
        const interpolation = f32(1 / f32(factor * posFreq));
        const ramp = Math.min(1, Math.max(0, f32((i - low) / (high - low))));
        const extrapolationFactor = 1 - ramp;
        invFreq[i] = f32(interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor);
      }
      return { invFreq, attentionFactor };
    }
  }
}

/**
 * cos and sin tables for positions [from, from + count) in the Hugging Face convention: the
 * angle table is the frequencies concatenated twice (halves, not interleaved pairs), both
 * multiplied by the attention factor. Row-major [count, headDim].
 */
export function ropeTablesFor(invFreq: Float64Array, attentionFactor: number, from: number, count: number): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const headDim = 2 * half;
  const cos = new Float32Array(count * headDim);
  const sin = new Float32Array(count * headDim);
  for (let i = 0; i < half; i++) {
    const f = invFreq[i] as number;
    for (let p = 0; p < count; p++) {
      const angle = f32((from + p) * f);
      const c = Math.cos(angle) * attentionFactor;
      const s = Math.sin(angle) * attentionFactor;
      cos[p * headDim + i] = c;
      cos[p * headDim + i + half] = c;
      sin[p * headDim + i] = s;
      sin[p * headDim + i + half] = s;
    }
  }
  return { cos, sin };
}

/** Plain rotary tables for positions 0..positions-1 (rope type 'default'). */
export function ropeTables(headDim: number, positions: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  return ropeTablesFor(defaultInverseFrequencies(headDim, theta), 1, 0, positions);
}

/**
 * A model's rotary tables, computed for the first 4,096 positions and grown by doubling as
 * forwards reach further (a Llama 3.1 config allows 131,072 positions; a table that long
 * would be 134 MB nobody uses). Dynamic NTK past max_position_embeddings gets a table for that forward's length.
 */
export class RotaryTable {
  private cos: tf.Tensor2D | null = null;
  private sin: tf.Tensor2D | null = null;
  /** The same tables as arrays, for the native decode path (which runs outside tfjs ops). */
  private cosValues: Float32Array = new Float32Array(0);
  private sinValues: Float32Array = new Float32Array(0);
  private rows = 0;
  private readonly base: { invFreq: Float64Array; attentionFactor: number };

  constructor(
    private readonly headDim: number,
    private readonly theta: number,
    private readonly scaling: RopeScaling | null,
    private readonly maxPositions: number,
  ) {
    this.base = inverseFrequencies(headDim, theta, scaling, maxPositions);
    // Made now, so a model's live tensor count is set once it exists (growing later replaces
    // the pair); 4,096 positions cover most uses of a long-context model at 4 MB for head_dim 128.
    this.reserve(Math.min(maxPositions, 4096));
  }

  /** Whether positions past max_position_embeddings are defined (dynamic NTK). */
  get extendsContext(): boolean {
    return this.scaling?.rope_type === 'dynamic';
  }

  /** Makes the cached table reach `end` positions (at most max_position_embeddings). */
  reserve(end: number): void {
    const limit = Math.min(end, this.maxPositions);
    if (limit <= this.rows) return;
    const rows = Math.min(this.maxPositions, Math.max(limit, 2 * this.rows, 64));
    const { cos, sin } = ropeTablesFor(this.base.invFreq, this.base.attentionFactor, 0, rows);
    this.dispose();
    // Kept: the table outlives the forward (and its tidy scope) that first needed it.
    this.cos = tf.keep(tf.tensor2d(cos, [rows, this.headDim]));
    this.sin = tf.keep(tf.tensor2d(sin, [rows, this.headDim]));
    this.cosValues = cos;
    this.sinValues = sin;
    this.rows = rows;
  }

  /** cos and sin [seq, headDim] for positions offset..offset+seq-1 (inside the caller's tidy). */
  slice(offset: number, seq: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    const end = offset + seq;
    if (end > this.maxPositions) {
      // Dynamic NTK: transformers recomputes the frequencies from the forward's length
      // (max position + 1) whenever it passes max_position_embeddings.
      const { invFreq, attentionFactor } = inverseFrequencies(this.headDim, this.theta, this.scaling, this.maxPositions, end);
      const { cos, sin } = ropeTablesFor(invFreq, attentionFactor, offset, seq);
      return { cos: tf.tensor2d(cos, [seq, this.headDim]), sin: tf.tensor2d(sin, [seq, this.headDim]) };
    }
    this.reserve(end);
    return { cos: tf.slice(this.cos!, [offset, 0], [seq, -1]), sin: tf.slice(this.sin!, [offset, 0], [seq, -1]) };
  }

  /** cos and sin [seq, headDim] of positions offset..offset+seq-1 as arrays (views of the table; never write them). */
  arrays(offset: number, seq: number): { cos: Float32Array; sin: Float32Array } {
    const end = offset + seq;
    if (end > this.maxPositions) {
      const { invFreq, attentionFactor } = inverseFrequencies(this.headDim, this.theta, this.scaling, this.maxPositions, end);
      return ropeTablesFor(invFreq, attentionFactor, offset, seq);
    }
    this.reserve(end);
    const [from, to] = [offset * this.headDim, end * this.headDim];
    return { cos: this.cosValues.subarray(from, to), sin: this.sinValues.subarray(from, to) };
  }

  dispose(): void {
    if (this.cos) tf.dispose([this.cos, this.sin!]);
    this.cos = null;
    this.sin = null;
    this.cosValues = new Float32Array(0);
    this.sinValues = new Float32Array(0);
    this.rows = 0;
  }
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
