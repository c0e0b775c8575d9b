import { resolveScheme, type NormScheme } from '@deepen/norms';
import type { StorageDtype } from '@deepen/core';
import { FAMILIES, isFamilyName, NOT_IMPLEMENTED, type FamilyName, type LayerType } from './families.js';
import { parseRopeScaling, type RopeScaling } from './rope.js';

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

/**
 * A model configuration with the Hugging Face keys (LlamaConfig's, plus the keys of the other
 * families deepen implements: see families.ts). `model_type` names the family.
 */
export interface LlamaConfig {
  model_type: FamilyName;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** Width of one attention head; hidden_size / num_attention_heads unless config.json says otherwise (Qwen3, Mistral-Nemo). */
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  /** Rotary scaling (Llama 3.1's llama3, linear, dynamic NTK, yarn); null for plain rotary. */
  rope_scaling: RopeScaling | null;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  initializer_range: number;
  /** Llama / Qwen3: biases on q, k, v and o_proj. */
  attention_bias: boolean;
  /** Llama: biases on gate, up and down_proj. */
  mlp_bias: boolean;
  /** Mistral: the window of every layer; Qwen: of the layers that slide (when use_sliding_window). */
  sliding_window: number | null;
  use_sliding_window: boolean;
  /** Qwen: layers from this index on slide, unless layer_types says otherwise. */
  max_window_layers: number | null;
  layer_types: LayerType[] | null;
  bos_token_id: number | null;
  eos_token_id: number | null;
  /** Every end-of-sequence id when config.json lists several (Llama 3.1: 128001, 128008, 128009). */
  eos_token_ids?: number[];
  pad_token_id: number | null;
  deepen: DeepenConfigBlock;
}

/** Another name for the same thing: a config of any family deepen implements. */
export type ModelConfig = LlamaConfig;

export const CONFIG_DEFAULTS: Omit<LlamaConfig, 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_hidden_layers' | 'num_attention_heads'> = {
  model_type: 'llama',
  num_key_value_heads: 0, // 0 = same as num_attention_heads, filled in by makeConfig
  head_dim: 0, // 0 = hidden_size / num_attention_heads, filled in by makeConfig
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  rope_scaling: null,
  max_position_embeddings: 1024,
  tie_word_embeddings: false,
  initializer_range: 0.02,
  attention_bias: false,
  mlp_bias: false,
  sliding_window: null,
  use_sliding_window: false,
  max_window_layers: null,
  layer_types: null,
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
    head_dim: input.head_dim || (Number.isInteger(input.hidden_size / input.num_attention_heads) ? input.hidden_size / input.num_attention_heads : 0),
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
  if (!isFamilyName(config.model_type)) problems.push(`model_type must be one of ${Object.keys(FAMILIES).join(', ')}, got ${JSON.stringify(config.model_type)}`);
  for (const key of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'max_position_embeddings'] as const) {
    if (!isPositiveInt(config[key])) problems.push(`${key} must be a positive integer, got ${JSON.stringify(config[key])}`);
  }
  const { hidden_size: H, num_attention_heads: nH, num_key_value_heads: nKV, head_dim: hd } = config;
  // head_dim 0 stands for "hidden_size / num_attention_heads", which must then divide evenly.
  if (!isPositiveInt(hd) && isPositiveInt(H) && isPositiveInt(nH) && H % nH !== 0) problems.push(`hidden_size (${H}) must be divisible by num_attention_heads (${nH})`);
  else if (!isPositiveInt(hd)) problems.push(`head_dim must be a positive integer, got ${JSON.stringify(hd)}`);
  else if (hd % 2 !== 0) problems.push(`head dimension (head_dim) = ${hd} must be even for rotary embeddings`);
  if (isPositiveInt(nH) && isPositiveInt(nKV) && nH % nKV !== 0) {
    problems.push(`num_attention_heads (${nH}) must be divisible by num_key_value_heads (${nKV})`);
  }
  if (!(typeof config.rms_norm_eps === 'number' && config.rms_norm_eps > 0)) problems.push(`rms_norm_eps must be a positive number, got ${config.rms_norm_eps}`);
  if (!(typeof config.rope_theta === 'number' && config.rope_theta > 0)) problems.push(`rope_theta must be a positive number, got ${config.rope_theta}`);
  if (!(typeof config.initializer_range === 'number' && config.initializer_range >= 0)) {
    problems.push(`initializer_range must be a non-negative number, got ${config.initializer_range}`);
  }
  for (const key of ['tie_word_embeddings', 'attention_bias', 'mlp_bias', 'use_sliding_window'] as const) {
    if (typeof config[key] !== 'boolean') problems.push(`${key} must be true or false, got ${JSON.stringify(config[key])}`);
  }
  if (isFamilyName(config.model_type)) {
    // A feature the family's transformers class does not have is not silently dropped.
    const keys = FAMILIES[config.model_type].keys;
    if (config.attention_bias && !keys.includes('attention_bias')) problems.push(`attention_bias: '${config.model_type}' models have no such option`);
    if (config.mlp_bias && !keys.includes('mlp_bias')) problems.push(`mlp_bias: '${config.model_type}' models have no such option`);
    if ((config.use_sliding_window || config.layer_types) && !keys.includes('use_sliding_window')) problems.push(`use_sliding_window / layer_types: '${config.model_type}' models have no such option`);
  }
  if (config.rope_scaling !== null) {
    try {
      parseRopeScaling(config.rope_scaling, 'rope_scaling', config.max_position_embeddings);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (config.sliding_window !== null && !isPositiveInt(config.sliding_window)) problems.push(`sliding_window must be null or a positive integer, got ${JSON.stringify(config.sliding_window)}`);
  if (config.max_window_layers !== null && !(Number.isInteger(config.max_window_layers) && config.max_window_layers >= 0)) {
    problems.push(`max_window_layers must be null or a non-negative integer, got ${JSON.stringify(config.max_window_layers)}`);
  }
  if (config.layer_types !== null) {
    const types = config.layer_types;
    if (!Array.isArray(types) || types.length !== config.num_hidden_layers || !types.every((t) => t === 'full_attention' || t === 'sliding_attention')) {
      problems.push(`layer_types must list 'full_attention' or 'sliding_attention' for each of the ${config.num_hidden_layers} layers, got ${JSON.stringify(types)}`);
    } else if (types.includes('sliding_attention') && !(config.use_sliding_window && config.sliding_window !== null)) {
      // transformers raises for this too (a sliding layer without a window).
      problems.push(`layer_types has sliding layers but there is no window (use_sliding_window ${config.use_sliding_window}, sliding_window ${config.sliding_window})`);
    }
  }
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    const id = config[key];
    if (id !== null && !(Number.isInteger(id) && id >= 0 && id < config.vocab_size)) {
      problems.push(`${key} must be null or an id in [0, vocab_size), got ${JSON.stringify(id)}`);
    }
  }
  if (config.eos_token_ids !== undefined && !(Array.isArray(config.eos_token_ids) && config.eos_token_ids.every((id) => Number.isInteger(id) && id >= 0 && id < config.vocab_size))) {
    problems.push(`eos_token_id must list ids in [0, vocab_size), got ${JSON.stringify(config.eos_token_ids)}`);
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
  return config.head_dim;
}

/** The family a config belongs to. */
export function familyOf(config: LlamaConfig) {
  return FAMILIES[config.model_type];
}

/** transformers' name for each safetensors storage dtype (config.json's torch_dtype). */
const TORCH_DTYPES: Record<StorageDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/**
 * config.json contents in the config's family layout (transformers v4 keys: `rope_theta` and
 * `rope_scaling`, which every transformers release reads) plus the deepen block. `dtype` is
 * the precision the weights are stored in (default F32); torch_dtype names it.
 */
export function configToJson(config: LlamaConfig, dtype: StorageDtype = 'F32'): Record<string, unknown> {
  const family = familyOf(config);
  return {
    architectures: [family.architecture],
    model_type: family.name,
    hidden_act: 'silu',
    vocab_size: config.vocab_size,
    hidden_size: config.hidden_size,
    intermediate_size: config.intermediate_size,
    num_hidden_layers: config.num_hidden_layers,
    num_attention_heads: config.num_attention_heads,
    num_key_value_heads: config.num_key_value_heads,
    head_dim: config.head_dim,
    rms_norm_eps: config.rms_norm_eps,
    rope_theta: config.rope_theta,
    rope_scaling: config.rope_scaling,
    max_position_embeddings: config.max_position_embeddings,
    tie_word_embeddings: config.tie_word_embeddings,
    initializer_range: config.initializer_range,
    ...family.write(config),
    bos_token_id: config.bos_token_id,
    eos_token_id: config.eos_token_ids && config.eos_token_ids.length > 1 ? config.eos_token_ids : config.eos_token_id,
    pad_token_id: config.pad_token_id,
    torch_dtype: TORCH_DTYPES[dtype],
    deepen: config.deepen,
  };
}

/**
 * Keys of transformers' PretrainedConfig that describe generation defaults, task heads or
 * bookkeeping: they never change a causal LM's forward pass.
 */
const BOOKKEEPING_KEYS = new Set([
  '_name_or_path', '_commit_hash', '_attn_implementation_autoset', 'transformers_version', 'torch_dtype', 'dtype', 'use_cache', 'return_dict',
  'output_hidden_states', 'output_attentions', 'torchscript', 'use_bfloat16', 'tf_legacy_loss', 'pruned_heads', 'tie_encoder_decoder', 'is_decoder',
  'is_encoder_decoder', 'cross_attention_hidden_size', 'add_cross_attention', 'chunk_size_feed_forward', 'max_length', 'min_length', 'do_sample',
  'early_stopping', 'num_beams', 'num_beam_groups', 'diversity_penalty', 'temperature', 'top_k', 'top_p', 'typical_p', 'repetition_penalty',
  'length_penalty', 'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size', 'bad_words_ids', 'num_return_sequences', 'output_scores',
  'return_dict_in_generate', 'forced_bos_token_id', 'forced_eos_token_id', 'remove_invalid_values', 'exponential_decay_length_penalty',
  'suppress_tokens', 'begin_suppress_tokens', 'finetuning_task', 'id2label', 'label2id', 'tokenizer_class', 'prefix', 'sep_token_id',
  'decoder_start_token_id', 'task_specific_params', 'problem_type', 'keys_to_ignore_at_inference', 'initializer_range',
  // Tensor-parallel slicing of the projections during pretraining: the same products, summed in another order.
  'pretraining_tp',
]);

/** Keys every family reads (their meaning is the same in all of them). */
const COMMON_KEYS = new Set([
  'architectures', 'model_type', 'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads',
  'head_dim', 'hidden_act', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'rope_parameters', 'max_position_embeddings', 'tie_word_embeddings',
  'bos_token_id', 'eos_token_id', 'pad_token_id', 'attention_dropout', 'deepen',
]);

/** transformers' defaults for keys a config.json may leave out, per family (their config classes). */
const FAMILY_DEFAULTS: Record<FamilyName, Record<string, unknown>> = {
  llama: { max_position_embeddings: 2048, rms_norm_eps: 1e-6, rope_theta: 10000, attention_bias: false, mlp_bias: false },
  mistral: { max_position_embeddings: 4096 * 32, rms_norm_eps: 1e-6, rope_theta: 10000, num_key_value_heads: 8, sliding_window: 4096 },
  qwen2: { max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 10000, use_sliding_window: false, sliding_window: 4096, max_window_layers: 28 },
  qwen3: { max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 10000, head_dim: 128, attention_bias: false, use_sliding_window: false, sliding_window: 4096, max_window_layers: 28 },
};

/** Reads the rotary base and scaling from either layout: v4 (`rope_theta` + `rope_scaling`) or v5 (`rope_parameters`). */
function readRope(j: Record<string, unknown>, source: string, maxPositions: number, defaultTheta: number): { theta: number; scaling: RopeScaling | null } {
  const params = j.rope_parameters;
  if (params === undefined || params === null) {
    return { theta: (j.rope_theta as number | undefined) ?? defaultTheta, scaling: parseRopeScaling(j.rope_scaling, `${source}: rope_scaling`, maxPositions) };
  }
  if (typeof params !== 'object' || Array.isArray(params)) throw new Error(`${source}: rope_parameters must be an object, got ${JSON.stringify(params)}`);
  const p = params as Record<string, unknown>;
  if (Object.values(p).some((v) => typeof v === 'object' && v !== null)) {
    throw new Error(`${source}: rope_parameters per layer type (${Object.keys(p).join(', ')}) is not implemented`);
  }
  const theta = (p.rope_theta as number | undefined) ?? (j.rope_theta as number | undefined) ?? defaultTheta;
  if (j.rope_theta !== undefined && p.rope_theta !== undefined && j.rope_theta !== p.rope_theta) {
    throw new Error(`${source}: rope_theta ${String(j.rope_theta)} and rope_parameters.rope_theta ${String(p.rope_theta)} disagree`);
  }
  const scaling = parseRopeScaling(p, `${source}: rope_parameters`, maxPositions);
  if (j.rope_scaling !== undefined && j.rope_scaling !== null) {
    const other = parseRopeScaling(j.rope_scaling, `${source}: rope_scaling`, maxPositions);
    if (JSON.stringify(other) !== JSON.stringify(scaling)) throw new Error(`${source}: rope_scaling and rope_parameters disagree`);
  }
  return { theta, scaling };
}

/**
 * Reads a parsed config.json: deepen's own or a Hugging Face checkpoint of a family deepen
 * implements (llama, mistral, qwen2, qwen3), in transformers' v4 or v5 layout. Without a
 * deepen block it is a Pre-LN model. An architecture, key or value deepen does not implement
 * is refused by name, before any weight is read.
 */
export function configFromJson(json: unknown, source = 'config.json'): LlamaConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  const j = json as Record<string, unknown>;
  const type = j.model_type ?? 'llama';
  if (!isFamilyName(type)) {
    const why = typeof type === 'string' ? NOT_IMPLEMENTED[type] : undefined;
    throw new Error(`${source}: model_type '${String(type)}' is not implemented${why ? ` (${why})` : ''}; deepen implements ${Object.keys(FAMILIES).join(', ')}`);
  }
  const family = FAMILIES[type];
  if (j.architectures !== undefined && j.architectures !== null) {
    const archs = j.architectures;
    if (!Array.isArray(archs) || archs.length !== 1 || archs[0] !== family.architecture) {
      throw new Error(`${source}: architectures ${JSON.stringify(archs)} is not implemented; a '${type}' causal LM is ["${family.architecture}"]`);
    }
  }
  if (j.quantization_config !== undefined) throw new Error(`${source}: quantized checkpoints (quantization_config) are not implemented`);
  if (j.auto_map !== undefined) throw new Error(`${source}: auto_map asks for the repository's own modelling code, which deepen does not run`);
  const unknown = Object.keys(j).filter((k) => !COMMON_KEYS.has(k) && !BOOKKEEPING_KEYS.has(k) && !family.keys.includes(k));
  if (unknown.length > 0) {
    throw new Error(`${source}: ${unknown.map((k) => `'${k}'`).join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not a '${type}' key deepen knows; it may change the computation, so the config is refused`);
  }
  if (j.hidden_act !== undefined && j.hidden_act !== 'silu') throw new Error(`${source}: hidden_act '${String(j.hidden_act)}' is not implemented (only 'silu')`);
  if (j.use_mrope !== undefined && j.use_mrope !== false) throw new Error(`${source}: use_mrope ${String(j.use_mrope)} (multimodal rotary) is not implemented`);
  if (j.attention_dropout !== undefined && j.attention_dropout !== 0) throw new Error(`${source}: attention_dropout ${String(j.attention_dropout)} is not implemented (deepen has no dropout; only 0)`);

  const defaults = FAMILY_DEFAULTS[type];
  const get = <T>(key: string): T | undefined => (j[key] !== undefined ? (j[key] as T) : (defaults[key] as T | undefined));
  const H = j.hidden_size as number;
  const nH = j.num_attention_heads as number;
  const maxPositions = get<number>('max_position_embeddings') as number;
  const { theta, scaling } = readRope(j, source, maxPositions, defaults.rope_theta as number);
  const eosList = Array.isArray(j.eos_token_id) ? (j.eos_token_id as number[]) : null;
  const slidingWindow = get<number | null>('sliding_window') ?? null;
  const config: LlamaConfig = {
    model_type: type,
    vocab_size: j.vocab_size as number,
    hidden_size: H,
    intermediate_size: j.intermediate_size as number,
    num_hidden_layers: j.num_hidden_layers as number,
    num_attention_heads: nH,
    num_key_value_heads: get<number>('num_key_value_heads') ?? nH,
    // Without head_dim, transformers uses hidden_size // num_attention_heads; deepen asks that it divide evenly (0 fails validation).
    head_dim: get<number | null>('head_dim') ?? (Number.isInteger(H / nH) ? H / nH : 0),
    rms_norm_eps: get<number>('rms_norm_eps') as number,
    rope_theta: theta,
    rope_scaling: scaling,
    max_position_embeddings: maxPositions,
    tie_word_embeddings: (j.tie_word_embeddings as boolean | undefined) ?? false,
    initializer_range: (j.initializer_range as number | undefined) ?? CONFIG_DEFAULTS.initializer_range,
    attention_bias: get<boolean>('attention_bias') ?? false,
    mlp_bias: get<boolean>('mlp_bias') ?? false,
    sliding_window: slidingWindow,
    use_sliding_window: get<boolean>('use_sliding_window') ?? false,
    max_window_layers: get<number | null>('max_window_layers') ?? null,
    layer_types: (j.layer_types as LayerType[] | null | undefined) ?? null,
    bos_token_id: (j.bos_token_id as number | null | undefined) ?? null,
    eos_token_id: eosList ? ((eosList[0] as number | undefined) ?? null) : ((j.eos_token_id as number | null | undefined) ?? null),
    ...(eosList && eosList.length > 1 ? { eos_token_ids: eosList } : {}),
    pad_token_id: (j.pad_token_id as number | null | undefined) ?? null,
    deepen: { norm_scheme: 'pre', ...((j.deepen as Partial<DeepenConfigBlock> | undefined) ?? {}) },
  };
  validateConfig(config, source);
  return config;
}
