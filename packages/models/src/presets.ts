import { familyOf, makeConfig, type LlamaConfig } from './config.js';

export interface PresetShape {
  num_hidden_layers: number;
  hidden_size: number;
  num_attention_heads: number;
  intermediate_size: number;
  /** Learning rate and schedule the paper used for this size, where it reports one. */
  paper?: { lr: number; steps: number; warmup: number };
}

/**
 * The paper's model shapes. 130m-1b are from the paper's table; 9m is from its public code;
 * 20m-71m follow the LLaMA shape family as in the GaLore / Mix-LN configs the paper's code
 * builds on. All use vocab 32000, rms_norm_eps 1e-6 and 1024 positions unless overridden.
 */
export const PRESETS: Record<string, PresetShape> = {
  tiny: { num_hidden_layers: 3, hidden_size: 32, num_attention_heads: 4, intermediate_size: 64 },
  /** Not from the paper: the `pretrain` default, small enough to train for a few minutes on two CPU cores. */
  small: { num_hidden_layers: 4, hidden_size: 64, num_attention_heads: 4, intermediate_size: 176 },
  '9m': { num_hidden_layers: 4, hidden_size: 128, num_attention_heads: 4, intermediate_size: 352 },
  '20m': { num_hidden_layers: 4, hidden_size: 256, num_attention_heads: 4, intermediate_size: 688 },
  '35m': { num_hidden_layers: 6, hidden_size: 384, num_attention_heads: 8, intermediate_size: 1024 },
  '60m': { num_hidden_layers: 8, hidden_size: 512, num_attention_heads: 8, intermediate_size: 1376 },
  '71m': { num_hidden_layers: 12, hidden_size: 512, num_attention_heads: 8, intermediate_size: 1368 },
  '130m': { num_hidden_layers: 12, hidden_size: 768, num_attention_heads: 12, intermediate_size: 2048, paper: { lr: 1e-3, steps: 20_000, warmup: 2_000 } },
  '250m': { num_hidden_layers: 24, hidden_size: 768, num_attention_heads: 16, intermediate_size: 2560, paper: { lr: 1e-3, steps: 40_000, warmup: 4_000 } },
  '350m': { num_hidden_layers: 24, hidden_size: 1024, num_attention_heads: 16, intermediate_size: 2736, paper: { lr: 5e-4, steps: 60_000, warmup: 6_000 } },
  '1b': { num_hidden_layers: 24, hidden_size: 2048, num_attention_heads: 32, intermediate_size: 5461, paper: { lr: 5e-4, steps: 100_000, warmup: 1_000 } },
};

/** A config from a preset shape; `overrides` may change any key (e.g. vocab_size, the scheme). */
export function presetConfig(name: string, overrides: Partial<Omit<LlamaConfig, 'deepen'>> & { deepen?: Partial<LlamaConfig['deepen']> } = {}): LlamaConfig {
  const shape = PRESETS[name.toLowerCase()];
  if (!shape) throw new Error(`unknown preset '${name}'; known presets: ${Object.keys(PRESETS).join(', ')}`);
  const { paper: _paper, ...dims } = shape;
  const base = name.toLowerCase() === 'tiny' ? { vocab_size: 64, max_position_embeddings: 64, num_key_value_heads: 2 } : { vocab_size: 32000 };
  return makeConfig({ ...dims, ...base, ...overrides });
}

/** Parameter counts, split the way scaling-law papers report them. */
export interface ParameterCount {
  total: number;
  embedding: number;
  /** Everything except the token embedding (the LM head counts when untied). */
  nonEmbedding: number;
}

/** Weights of one block's projections: q and o (nH * head_dim wide), k and v (nKV * head_dim), the MLP. */
function projectionWeights(config: LlamaConfig): number {
  const H = config.hidden_size;
  const q = config.num_attention_heads * config.head_dim;
  const kv = config.num_key_value_heads * config.head_dim;
  return 2 * H * q + 2 * H * kv + 3 * H * config.intermediate_size;
}

function blockParams(config: LlamaConfig, normsPerBlock: number, gateParams: number): number {
  const H = config.hidden_size;
  const family = familyOf(config);
  const b = family.biases(config);
  const q = config.num_attention_heads * config.head_dim;
  const kv = config.num_key_value_heads * config.head_dim;
  const I = config.intermediate_size;
  const biases = (b.q ? q : 0) + (b.k ? kv : 0) + (b.v ? kv : 0) + (b.o ? H : 0) + (b.gate ? I : 0) + (b.up ? I : 0) + (b.down ? H : 0);
  const qkNorms = family.qkNorm ? 2 * config.head_dim : 0;
  return projectionWeights(config) + biases + qkNorms + normsPerBlock * H + gateParams;
}

/** Exact parameter count of a model with this config (norms and gates included). */
export function countParameters(config: LlamaConfig, layout: { normsPerBlock: number[]; gateParams: number[] }): ParameterCount {
  const H = config.hidden_size;
  const embedding = config.vocab_size * H;
  let blocks = 0;
  for (let i = 0; i < config.num_hidden_layers; i++) blocks += blockParams(config, layout.normsPerBlock[i] ?? 2, layout.gateParams[i] ?? 0);
  const head = config.tie_word_embeddings ? 0 : config.vocab_size * H;
  const nonEmbedding = blocks + H + head;
  return { total: embedding + nonEmbedding, embedding, nonEmbedding };
}

/**
 * Training FLOPs per token (forward + backward = 3x forward), counting every matmul: the
 * projections and MLP (2 FLOPs per weight per token), the LM head, and attention's score and
 * weighted-sum products over `seqLen` positions (as in nanoGPT / PaLM's MFU formula: the
 * causal mask is not discounted). Elementwise ops and norms are ignored.
 */
export function trainingFlopsPerToken(config: LlamaConfig, seqLen: number): number {
  return 3 * forwardFlopsPerToken(config, seqLen);
}

export function forwardFlopsPerToken(config: LlamaConfig, seqLen: number): number {
  const H = config.hidden_size;
  const linearWeights = config.num_hidden_layers * projectionWeights(config) + config.vocab_size * H;
  // QK^T and PV over nH * head_dim, 2 FLOPs per multiply-add (a sliding window is not discounted either).
  const attention = config.num_hidden_layers * 2 * 2 * seqLen * config.num_attention_heads * config.head_dim;
  return 2 * linearWeights + attention;
}
