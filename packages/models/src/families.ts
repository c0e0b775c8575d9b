/**
 * The Hugging Face model families deepen implements, as data. The model never branches on a
 * family's name: it asks the family which projections carry a bias, whether queries and keys
 * are normalised per head, and which layers attend through a sliding window. Each family also
 * knows the config.json keys transformers reads for it, so a config is read and written back
 * in that family's own layout.
 */

import type { LlamaConfig } from './config.js';

export type FamilyName = 'llama' | 'mistral' | 'qwen2' | 'qwen3';
export type LayerType = 'full_attention' | 'sliding_attention';

/** The per-block projection biases a family's checkpoints carry. */
export interface BlockBiases {
  q: boolean;
  k: boolean;
  v: boolean;
  o: boolean;
  gate: boolean;
  up: boolean;
  down: boolean;
}

/** What a family's forward pass reads from a config. */
export type FamilyFields = Pick<LlamaConfig, 'attention_bias' | 'mlp_bias' | 'sliding_window' | 'use_sliding_window' | 'max_window_layers' | 'layer_types' | 'num_hidden_layers'>;

export interface Family {
  name: FamilyName;
  /** The transformers class its checkpoints name in `architectures`. */
  architecture: string;
  /** Projections with a bias under this config. */
  biases(config: FamilyFields): BlockBiases;
  /** Per-head RMSNorm of queries and keys (over head_dim) before the rotary embedding. */
  qkNorm: boolean;
  /** The attention window of each layer (null: full causal attention). */
  windows(config: FamilyFields): Array<number | null>;
  /** config.json keys this family reads beyond the ones every family shares. */
  keys: readonly string[];
  /** Those keys as this family writes them (for a config with `config` fields). */
  write(config: FamilyFields): Record<string, unknown>;
}

const none: BlockBiases = { q: false, k: false, v: false, o: false, gate: false, up: false, down: false };

/**
 * Qwen2 and Qwen3 decide per layer: `layer_types` when given, otherwise the layers from
 * `max_window_layers` on slide, and only when `use_sliding_window` is true (transformers'
 * Qwen2Config / Qwen3Config).
 */
function qwenWindows(c: FamilyFields): Array<number | null> {
  const window = c.use_sliding_window ? c.sliding_window : null;
  return resolvedLayerTypes(c).map((t) => (t === 'sliding_attention' ? window : null));
}

/** Qwen's layer types, derived as transformers derives them when config.json lists none. */
export function resolvedLayerTypes(c: FamilyFields): LayerType[] {
  if (c.layer_types) return c.layer_types;
  const window = c.use_sliding_window ? c.sliding_window : null;
  const firstSliding = c.max_window_layers ?? c.num_hidden_layers;
  return Array.from({ length: c.num_hidden_layers }, (_, i) => (window !== null && i >= firstSliding ? 'sliding_attention' : 'full_attention'));
}

function qwenWrite(c: FamilyFields): Record<string, unknown> {
  return {
    use_sliding_window: c.use_sliding_window,
    sliding_window: c.sliding_window,
    max_window_layers: c.max_window_layers ?? c.num_hidden_layers,
    ...(c.layer_types ? { layer_types: c.layer_types } : {}),
  };
}

export const FAMILIES: Record<FamilyName, Family> = {
  llama: {
    name: 'llama',
    architecture: 'LlamaForCausalLM',
    biases: (c) => ({ q: c.attention_bias, k: c.attention_bias, v: c.attention_bias, o: c.attention_bias, gate: c.mlp_bias, up: c.mlp_bias, down: c.mlp_bias }),
    qkNorm: false,
    windows: (c) => Array.from({ length: c.num_hidden_layers }, () => null),
    keys: ['attention_bias', 'mlp_bias', 'pretraining_tp'],
    write: (c) => ({ attention_bias: c.attention_bias, mlp_bias: c.mlp_bias }),
  },
  mistral: {
    name: 'mistral',
    architecture: 'MistralForCausalLM',
    biases: () => none,
    qkNorm: false,
    // Every layer slides when sliding_window is set (Mistral 7B v0.1: 4096; v0.2 on: null).
    windows: (c) => Array.from({ length: c.num_hidden_layers }, () => c.sliding_window),
    keys: ['sliding_window'],
    write: (c) => ({ sliding_window: c.sliding_window }),
  },
  qwen2: {
    name: 'qwen2',
    architecture: 'Qwen2ForCausalLM',
    // Qwen2Attention: q/k/v always biased, o_proj never.
    biases: () => ({ ...none, q: true, k: true, v: true }),
    qkNorm: false,
    windows: qwenWindows,
    // use_mrope is Qwen2-VL's multimodal rotary; Qwen2 text configs from transformers 4.40 carry `false`.
    keys: ['use_sliding_window', 'sliding_window', 'max_window_layers', 'layer_types', 'use_mrope'],
    write: qwenWrite,
  },
  qwen3: {
    name: 'qwen3',
    architecture: 'Qwen3ForCausalLM',
    biases: (c) => ({ ...none, q: c.attention_bias, k: c.attention_bias, v: c.attention_bias, o: c.attention_bias }),
    qkNorm: true,
    windows: qwenWindows,
    keys: ['attention_bias', 'use_sliding_window', 'sliding_window', 'max_window_layers', 'layer_types'],
    write: (c) => ({ attention_bias: c.attention_bias, ...qwenWrite(c) }),
  },
};

export function isFamilyName(name: unknown): name is FamilyName {
  return typeof name === 'string' && Object.hasOwn(FAMILIES, name);
}

/**
 * Architectures people point deepen at that it does not implement, with the reason, so the
 * refusal says more than "unknown".
 */
export const NOT_IMPLEMENTED: Record<string, string> = {
  mixtral: 'a mixture-of-experts model (MoE)',
  qwen2_moe: 'a mixture-of-experts model (MoE)',
  qwen3_moe: 'a mixture-of-experts model (MoE)',
  deepseek_v2: 'multi-head latent attention (MLA) with mixture-of-experts layers',
  deepseek_v3: 'multi-head latent attention (MLA) with mixture-of-experts layers',
  gemma: "Gemma's (1 + weight) norms, GeGLU MLP and scaled embeddings",
  gemma2: "Gemma 2's sandwich norms, logit soft-capping and alternating windows",
  gemma3: "Gemma 3's sandwich norms, q/k norms and per-layer rope",
  phi3: "Phi-3's fused qkv/gate_up projections and LongRoPE",
  phi: "Phi's LayerNorm, parallel blocks and partial rotary",
  olmo2: "OLMo 2's post-norm blocks with q/k norms",
  gpt2: 'learned positions and LayerNorm',
  qwen2_vl: 'multimodal rotary (M-RoPE) and a vision tower',
};
