import type { Tokenizer } from '@deepen/data';
import { BLOCK, checkpointTensors, familyOf, foldedConfig, LM_HEAD, type LlamaConfig, type LlamaModel } from '@deepen/models';
import { f32, FILE_TYPES, GgufError, str, u32, writeGguf, type GgufTensorToWrite, type GgufValue, type TensorTypeName } from './format.js';
import { ARCHITECTURES, ggufName, permuteRotaryRows } from './names.js';
import { encodeTensor, Q8_0_BLOCK } from './quant.js';
import { tokenizerMetadata } from './tokenizer.js';

export type GgufDtype = 'f32' | 'f16' | 'bf16' | 'q8_0';
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'bf16', 'q8_0'];

export interface ExportGgufOptions {
  /** Type of the matrices (default f32). Norms and biases stay F32; Q8_0 falls back to F16 for rows not a multiple of 32 long. */
  dtype?: GgufDtype;
  /** general.name (default: "deepen model"). */
  name?: string;
  /** Leave q/k rows in Hugging Face's layout (only for tests that show the permutation matters). */
  skipRotaryPermutation?: boolean;
}

export interface ExportGgufResult {
  path: string;
  bytes: number;
  arch: string;
  /** How many tensors were written in each type. */
  tensorTypes: Record<string, number>;
  /** Where llama.cpp will not reproduce the model exactly (e.g. a sliding window it ignores). */
  warnings: string[];
}

const MATRIX_TYPE: Record<GgufDtype, TensorTypeName> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0' };

/** The type a tensor is written in: matrices in the asked type, vectors in F32 (as llama.cpp's converter does). */
function tensorType(dims: readonly number[], dtype: GgufDtype): TensorTypeName {
  if (dims.length < 2) return 'F32';
  if (dtype === 'q8_0' && (dims[0] as number) % Q8_0_BLOCK !== 0) return 'F16';
  return MATRIX_TYPE[dtype];
}

/** Why llama.cpp's architecture cannot run this config, or null. */
function refusal(config: LlamaConfig, arch: string): string | null {
  const scaling = config.rope_scaling;
  if (scaling?.rope_type === 'dynamic') return 'rope_scaling type dynamic (NTK scaling past max_position_embeddings) has no llama.cpp equivalent';
  if (scaling?.rope_type === 'yarn') return 'rope_scaling type yarn is not exported yet (llama.cpp implements it with its own parameters; deepen has not been checked against them)';
  if (scaling?.rope_type === 'llama3' && arch !== 'llama') return `rope_scaling type llama3 on llama.cpp's ${arch} architecture (only its llama architecture reads rope_freqs)`;
  if (arch === 'qwen2' && config.head_dim * config.num_attention_heads !== config.hidden_size) {
    return `llama.cpp's qwen2 architecture needs head_dim x num_attention_heads == hidden_size (${config.head_dim} x ${config.num_attention_heads} != ${config.hidden_size})`;
  }
  if (arch === 'qwen3' && config.attention_bias) return "llama.cpp's qwen3 architecture has no o_proj bias (attention_bias true)";
  return null;
}

/** llama.cpp's rope_freqs for Llama 3.1 scaling: the factor each rotary frequency is divided by. */
function llama3RopeFactors(config: LlamaConfig): Float32Array {
  const s = config.rope_scaling;
  if (s?.rope_type !== 'llama3') throw new Error('not llama3 rope scaling');
  const dim = config.head_dim;
  const lowWavelen = s.original_max_position_embeddings / s.low_freq_factor;
  const highWavelen = s.original_max_position_embeddings / s.high_freq_factor;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / config.rope_theta ** ((2 * i) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/**
 * The model's architecture keys for llama.cpp. Every config field the model uses either has a
 * key here, is implied by the architecture, or was refused above.
 */
function architectureMetadata(config: LlamaConfig, arch: string): Array<[string, GgufValue]> {
  const k = (key: string) => `${arch}.${key}`;
  const out: Array<[string, GgufValue]> = [
    [k('vocab_size'), u32(config.vocab_size)],
    [k('context_length'), u32(config.max_position_embeddings)],
    [k('embedding_length'), u32(config.hidden_size)],
    [k('block_count'), u32(config.num_hidden_layers)],
    [k('feed_forward_length'), u32(config.intermediate_size)],
    [k('attention.head_count'), u32(config.num_attention_heads)],
    [k('attention.head_count_kv'), u32(config.num_key_value_heads)],
    [k('attention.key_length'), u32(config.head_dim)],
    [k('attention.value_length'), u32(config.head_dim)],
    [k('attention.layer_norm_rms_epsilon'), f32(config.rms_norm_eps)],
    [k('rope.dimension_count'), u32(config.head_dim)],
    [k('rope.freq_base'), f32(config.rope_theta)],
  ];
  if (config.rope_scaling?.rope_type === 'linear') {
    out.push([k('rope.scaling.type'), str('linear')], [k('rope.scaling.factor'), f32(config.rope_scaling.factor)]);
  }
  return out;
}

/**
 * Writes a model as a GGUF file that llama.cpp (and Ollama, LM Studio, node-llama-cpp) runs.
 * Norm schemes that fold (lns, layerscale, skipinit and their combinations with init-only
 * parts) are folded into a plain Pre-LN model first; the others are refused with the reason.
 * The file appears at `path` complete or not at all.
 */
export async function exportGguf(model: LlamaModel, tokenizer: Tokenizer, path: string, options: ExportGgufOptions = {}): Promise<ExportGgufResult> {
  const dtype = options.dtype ?? 'f32';
  if (!GGUF_DTYPES.includes(dtype)) throw new GgufError(`GGUF dtype '${String(dtype)}' is not one deepen writes (${GGUF_DTYPES.join(', ')})`);
  let config: LlamaConfig;
  try {
    config = foldedConfig(model);
  } catch (error) {
    throw new GgufError(`${(error as Error).message.replace(/; save without fold.*$/, '')}, so llama.cpp cannot run it`);
  }
  const family = familyOf(config);
  const { arch, neighbourRope } = ARCHITECTURES[family.name];
  const refused = refusal(config, arch);
  if (refused) throw new GgufError(`cannot export to GGUF: ${refused}`);
  const warnings: string[] = [];
  const windows = family.windows(config).filter((w): w is number => w !== null && w < config.max_position_embeddings);
  if (windows.length > 0) {
    const window = Math.min(...windows);
    warnings.push(
      `llama.cpp's ${arch} architecture has no sliding window: the file matches this model for contexts up to ${window} tokens (its window) and attends to the whole context beyond`,
    );
  }

  const metadata: Array<[string, GgufValue]> = [
    ['general.architecture', str(arch)],
    ['general.name', str(options.name ?? 'deepen model')],
    ['general.file_type', u32(FILE_TYPES[MATRIX_TYPE[dtype]])],
  ];
  if (dtype === 'q8_0') metadata.push(['general.quantization_version', u32(2)]);
  if (model.scheme.name !== 'pre') metadata.push(['deepen.folded_from', str(model.scheme.name)]);
  metadata.push(...architectureMetadata(config, arch));
  try {
    metadata.push(...tokenizerMetadata(tokenizer, config.vocab_size));
  } catch (error) {
    throw new GgufError(`cannot export the tokenizer to GGUF: ${(error as Error).message}`);
  }

  const tensorTypes: Record<string, number> = {};
  const tensors: GgufTensorToWrite[] = [];
  for (const t of checkpointTensors(model, { fold: true })) {
    if (t.name === LM_HEAD && config.tie_word_embeddings) continue; // llama.cpp reuses token_embd.weight
    const name = ggufName(t.name);
    if (name === null) throw new GgufError(`cannot export to GGUF: tensor ${t.name} has no llama.cpp counterpart`);
    const dims = [...t.shape].reverse(); // ggml lists the contiguous dimension first
    const type = tensorType(dims, dtype);
    tensorTypes[type] = (tensorTypes[type] ?? 0) + 1;
    const suffix = t.name.replace(/^model\.layers\.\d+\./, '');
    const heads = suffix === BLOCK.q || suffix === BLOCK.qBias ? config.num_attention_heads : suffix === BLOCK.k || suffix === BLOCK.kBias ? config.num_key_value_heads : 0;
    const permute = neighbourRope && heads > 0 && !options.skipRotaryPermutation;
    const rowLength = t.shape.length === 2 ? (t.shape[1] as number) : 1;
    tensors.push({ name, dims, type, data: () => encodeTensor(permute ? permuteRotaryRows(t.values(), heads, rowLength, true) : t.values(), type) });
  }
  if (config.rope_scaling?.rope_type === 'llama3') {
    const factors = llama3RopeFactors(config);
    tensors.push({ name: 'rope_freqs.weight', dims: [factors.length], type: 'F32', data: () => encodeTensor(factors, 'F32') });
    tensorTypes.F32 = (tensorTypes.F32 ?? 0) + 1;
  }
  const bytes = await writeGguf(path, metadata, tensors);
  return { path, bytes, arch, tensorTypes, warnings };
}
