/**
 * Hugging Face tensor names (LlamaForCausalLM's, which Mistral, Qwen2 and Qwen3 share, plus their
 * biases and q/k norms), and deepen's additions for extra norms and gates.
 */
export const EMBED = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

export const layerPrefix = (i: number) => `model.layers.${i}.`;

/** Per-block tensor names (suffixes after `model.layers.{i}.`). */
export const BLOCK = {
  /** The norm of the attention sublayer (before it in Pre-LN, after the residual in Post-LN). */
  attnNorm: 'input_layernorm.weight',
  /** The norm of the MLP sublayer. */
  mlpNorm: 'post_attention_layernorm.weight',
  /**
   * Sandwich only: the norms on the sublayer outputs. post_feedforward_layernorm is Gemma 2's
   * name; post_attention_output_layernorm is deepen's own (Gemma 2 calls that norm
   * post_attention_layernorm, the name LLaMA, and so mlpNorm above, gives the MLP's input norm).
   */
  attnOutNorm: 'post_attention_output_layernorm.weight',
  mlpOutNorm: 'post_feedforward_layernorm.weight',
  q: 'self_attn.q_proj.weight',
  k: 'self_attn.k_proj.weight',
  v: 'self_attn.v_proj.weight',
  o: 'self_attn.o_proj.weight',
  gate: 'mlp.gate_proj.weight',
  up: 'mlp.up_proj.weight',
  down: 'mlp.down_proj.weight',
  /** Projection biases (Qwen2: q/k/v; Llama attention_bias: q/k/v/o, mlp_bias: gate/up/down). */
  qBias: 'self_attn.q_proj.bias',
  kBias: 'self_attn.k_proj.bias',
  vBias: 'self_attn.v_proj.bias',
  oBias: 'self_attn.o_proj.bias',
  gateBias: 'mlp.gate_proj.bias',
  upBias: 'mlp.up_proj.bias',
  downBias: 'mlp.down_proj.bias',
  /** Qwen3: per-head RMSNorm of queries and keys, over head_dim. */
  qNorm: 'self_attn.q_norm.weight',
  kNorm: 'self_attn.k_norm.weight',
  /** LayerScale / SkipInit gates on the sublayer outputs. */
  attnGate: 'self_attn.output_gate',
  mlpGate: 'mlp.output_gate',
} as const;

/** Linear weights: stored [in, out] inside deepen (so matmuls need no transpose), [out, in] in checkpoints. */
export const LINEAR_SUFFIXES = new Set<string>([BLOCK.q, BLOCK.k, BLOCK.v, BLOCK.o, BLOCK.gate, BLOCK.up, BLOCK.down]);

export function isLinear(name: string): boolean {
  if (name === LM_HEAD) return true;
  const m = /^model\.layers\.\d+\.(.+)$/.exec(name);
  return m !== null && LINEAR_SUFFIXES.has(m[1] as string);
}
