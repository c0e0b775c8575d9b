import { resolveScheme, type NormScheme } from '@deepen/norms';
import type { StorageDtype } from '@deepen/core';

/**
 * deepen's additions to a LLaMA config, stored under "deepen" in config.json. Stock Hugging
 * Face tools ignore the block; a config without it is a plain Pre-LN LLaMA.
 */
export interface DeepenConfigBlock {
  /** Normalization scheme, e.g. 'pre', 'lns', 'mix', 'lns+scaled'. */
  norm_scheme: string;
  /** Mix-LN: leading Post-LN blocks (default 25% of the layers). */
  mix_post_layers?: number;
  /** LayerScale: initial gate value (default 0.1). */
  layer_scale_init?: number;
  /**
   * The depth (1-based) each layer had when the scheme's depth-dependent constants were
   * fixed, e.g. after pruning layers from a deeper LNS model. Default: 1..num_hidden_layers.
   */
  layer_depths?: number[];
  /** Layer count the scheme's constants were computed for (DeepNorm's L). Default: num_hidden_layers. */
  scheme_num_layers?: number;
  /** Set on export when stock LLaMA runtimes cannot reproduce this model. */
  stock_runtime_compatible?: boolean;
  note?: string;
  [key: string]: unknown;
}

/** A LLaMA configuration with the Hugging Face LlamaConfig keys. */
export interface LlamaConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  initializer_range: number;
  bos_token_id: number | null;
  eos_token_id: number | null;
  pad_token_id: number | null;
  deepen: DeepenConfigBlock;
}

export const CONFIG_DEFAULTS: Omit<LlamaConfig, 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_hidden_layers' | 'num_attention_heads'> = {
  num_key_value_heads: 0, // 0 = same as num_attention_heads, filled in by makeConfig
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  max_position_embeddings: 1024,
  tie_word_embeddings: false,
  initializer_range: 0.02,
  bos_token_id: 1,
  eos_token_id: 2,
  pad_token_id: null,
  deepen: { norm_scheme: 'pre' },
};

type ConfigInput = Pick<LlamaConfig, 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_hidden_layers' | 'num_attention_heads'> &
  Partial<Omit<LlamaConfig, 'deepen'>> & { deepen?: Partial<DeepenConfigBlock> };

/** Fills defaults and validates; throws with every problem found, each naming its key. */
export function makeConfig(input: ConfigInput): LlamaConfig {
  const config: LlamaConfig = {
    ...CONFIG_DEFAULTS,
    ...input,
    num_key_value_heads: input.num_key_value_heads || input.num_attention_heads,
    deepen: { ...CONFIG_DEFAULTS.deepen, ...(input.deepen ?? {}) } as DeepenConfigBlock,
  };
  validateConfig(config);
  return config;
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** Throws a single error listing every invalid key of the config. */
export function validateConfig(config: LlamaConfig, source = 'config'): void {
  const problems: string[] = [];
  for (const key of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings'] as const) {
    if (!isPositiveInt(config[key])) problems.push(`${key} must be a positive integer, got ${JSON.stringify(config[key])}`);
  }
  const { hidden_size: H, num_attention_heads: nH, num_key_value_heads: nKV } = config;
  if (isPositiveInt(H) && isPositiveInt(nH)) {
    if (H % nH !== 0) problems.push(`hidden_size (${H}) must be divisible by num_attention_heads (${nH})`);
    else if ((H / nH) % 2 !== 0) problems.push(`head dimension hidden_size / num_attention_heads = ${H / nH} must be even for rotary embeddings`);
  }
  if (isPositiveInt(nH) && isPositiveInt(nKV) && nH % nKV !== 0) {
    problems.push(`num_attention_heads (${nH}) must be divisible by num_key_value_heads (${nKV})`);
  }
  if (!(typeof config.rms_norm_eps === 'number' && config.rms_norm_eps > 0)) problems.push(`rms_norm_eps must be a positive number, got ${config.rms_norm_eps}`);
  if (!(typeof config.rope_theta === 'number' && config.rope_theta > 0)) problems.push(`rope_theta must be a positive number, got ${config.rope_theta}`);
  if (!(typeof config.initializer_range === 'number' && config.initializer_range >= 0)) {
    problems.push(`initializer_range must be a non-negative number, got ${config.initializer_range}`);
  }
  if (typeof config.tie_word_embeddings !== 'boolean') problems.push(`tie_word_embeddings must be true or false, got ${config.tie_word_embeddings}`);
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    const id = config[key];
    if (id !== null && !(Number.isInteger(id) && id >= 0 && id < config.vocab_size)) {
      problems.push(`${key} must be null or an id in [0, vocab_size), got ${JSON.stringify(id)}`);
    }
  }
  const depths = config.deepen.layer_depths;
  if (depths !== undefined) {
    if (!Array.isArray(depths) || depths.length !== config.num_hidden_layers || !depths.every(isPositiveInt)) {
      problems.push(`deepen.layer_depths must list one positive depth per layer (${config.num_hidden_layers}), got ${JSON.stringify(depths)}`);
    }
  }
  if (problems.length === 0) {
    try {
      schemeOf(config);
    } catch (error) {
      problems.push(`deepen.norm_scheme: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0) throw new Error(`invalid ${source}: ${problems.join('; ')}`);
}

/** The normalization scheme a config asks for, resolved for its layer count. */
export function schemeOf(config: LlamaConfig): NormScheme {
  const d = config.deepen;
  const schemeLayers = d.scheme_num_layers ?? Math.max(config.num_hidden_layers, ...(d.layer_depths ?? []));
  return resolveScheme(d.norm_scheme, schemeLayers, {
    ...(d.mix_post_layers !== undefined ? { mixPostLayers: d.mix_post_layers } : {}),
    ...(d.layer_scale_init !== undefined ? { layerScaleInit: d.layer_scale_init } : {}),
  });
}

/** The 1-based depth whose scheme constants layer `index` (0-based) uses. */
export function layerDepth(config: LlamaConfig, index: number): number {
  return config.deepen.layer_depths?.[index] ?? index + 1;
}

export function headDim(config: LlamaConfig): number {
  return config.hidden_size / config.num_attention_heads;
}

/** transformers' name for each safetensors storage dtype (config.json's torch_dtype). */
const TORCH_DTYPES: Record<StorageDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * config.json contents: v4-style Hugging Face keys plus the deepen block. `dtype` is the
 * precision the weights are stored in (default F32); torch_dtype names it.
 */
export function configToJson(config: LlamaConfig, dtype: StorageDtype = 'F32'): Record<string, unknown> {
  const { deepen, ...hf } = config;
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    ...hf,
    head_dim: headDim(config),
    torch_dtype: TORCH_DTYPES[dtype],
    deepen,
  };
}

/**
 * Reads a parsed config.json (ours or any Hugging Face LLaMA). Without a deepen block it is a
 * Pre-LN model. Features deepen does not implement are refused by name.
 */
export function configFromJson(json: unknown, source = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  const j = json as Record<string, unknown>;
  if (j.model_type !== undefined && j.model_type !== 'llama') throw new Error(`${source}: model_type '${String(j.model_type)}' is not 'llama'`);
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu') throw new Error(`${source}: hidden_act '${String(j.hidden_act)}' is not supported (only 'silu')`);
  if (j.attention_bias === true || j.mlp_bias === true) throw new Error(`${source}: attention_bias / mlp_bias are not supported`);
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) throw new Error(`${source}: rope_scaling is not supported`);
  const H = j.hidden_size as number;
  const nH = j.num_attention_heads as number;
  if (j.head_dim !== undefined && j.head_dim !== null && typeof H === 'number' && typeof nH === 'number' && j.head_dim !== H / nH) {
    throw new Error(`${source}: head_dim ${String(j.head_dim)} differs from hidden_size / num_attention_heads (${H / nH}); not supported`);
  }
  const eos = Array.isArray(j.eos_token_id) ? (j.eos_token_id[0] as number) : (j.eos_token_id as number | null | undefined);
  const config: LlamaConfig = {
    vocab_size: j.vocab_size as number,
    hidden_size: H,
    intermediate_size: j.intermediate_size as number,
    num_hidden_layers: j.num_hidden_layers as number,
    num_attention_heads: nH,
    num_key_value_heads: (j.num_key_value_heads as number | undefined) ?? nH,
    rms_norm_eps: (j.rms_norm_eps as number | undefined) ?? CONFIG_DEFAULTS.rms_norm_eps,
    rope_theta: (j.rope_theta as number | undefined) ?? CONFIG_DEFAULTS.rope_theta,
    max_position_embeddings: (j.max_position_embeddings as number | undefined) ?? 2048,
    tie_word_embeddings: (j.tie_word_embeddings as boolean | undefined) ?? false,
    initializer_range: (j.initializer_range as number | undefined) ?? CONFIG_DEFAULTS.initializer_range,
    bos_token_id: (j.bos_token_id as number | null | undefined) ?? null,
    eos_token_id: eos ?? null,
    pad_token_id: (j.pad_token_id as number | null | undefined) ?? null,
    deepen: { norm_scheme: 'pre', ...((j.deepen as Partial<DeepenConfigBlock> | undefined) ?? {}) },
  };
  validateConfig(config, source);
  return config;
}
