import * as tf from '@tensorflow/tfjs';
import { encodeFloat32, type StorageDtype, type TensorToWrite } from '@deepen/core';
import { BLOCK, configToJson, EMBED, inverseFrequencies, isLinear, LlamaModel, LM_HEAD, makeConfig, modelTensorShapes, writeCheckpoint, type LlamaConfig, type RopeScaling } from '@deepen/models';
import { GgufError, metaValue, readableType, readGguf, readTensorBytes, type GgufFile, type TensorTypeName } from './format.js';
import { FAMILY_OF_ARCH, ggufName, hfName, permuteRotaryRows } from './names.js';
import { decodeTensor } from './quant.js';
import { tokenizerFromGguf, type ImportedTokenizer } from './tokenizer.js';

/** The `{arch}.*` keys deepen reads; any other one changes the model in a way deepen does not implement. */
const ARCH_KEYS = new Set([
  'vocab_size',
  'context_length',
  'embedding_length',
  'block_count',
  'feed_forward_length',
  'attention.head_count',
  'attention.head_count_kv',
  'attention.key_length',
  'attention.value_length',
  'attention.layer_norm_rms_epsilon',
  'rope.dimension_count',
  'rope.freq_base',
  'rope.scaling.type',
  'rope.scaling.factor',
  // Informational: how long the original context was, whether a model was fine-tuned on scaled rope.
  'rope.scaling.original_context_length',
  'rope.scaling.finetuned',
]);
/** Keys that may be present with a value that changes nothing. */
const NEUTRAL_VALUES: Record<string, number> = { expert_count: 0, expert_used_count: 0 };

export interface GgufModel {
  config: LlamaConfig;
  /** Tensors in checkpoint layout (Hugging Face names, [out, in] linears). */
  tensors: Map<string, { shape: number[]; values: Float32Array }>;
  tokenizer: ImportedTokenizer;
  arch: string;
  /** How many tensors of each ggml type the file held. */
  tensorTypes: Record<string, number>;
  /** The storage dtype that keeps the imported values exact (F32 for Q8_0 or mixed files). */
  exactDtype: StorageDtype;
}

/**
 * Recovers Llama 3.1 rope scaling from llama.cpp's rope_freqs (the factor each frequency is
 * divided by). The factors pin down `factor` and the line the smooth region follows; with
 * low_freq_factor 1 that gives high_freq_factor and the original context, and the result is
 * accepted only if it reproduces every factor.
 */
function llama3FromFactors(factors: Float32Array, headDim: number, theta: number, where: string): RopeScaling {
  const factor = Math.max(...factors);
  const freq = (i: number) => 1 / theta ** ((2 * i) / headDim);
  const smooth: Array<{ x: number; s: number }> = [];
  factors.forEach((f, i) => {
    if (f > 1 + 1e-6 && f < factor - 1e-6) smooth.push({ x: freq(i) / (2 * Math.PI), s: (1 / f - 1 / factor) / (1 - 1 / factor) });
  });
  const candidates: RopeScaling[] = [];
  if (smooth.length >= 2) {
    // s = orig * x / (high - low) - low / (high - low), linear in x = 1 / wavelen.
    const a = smooth[0] as { x: number; s: number };
    const b = smooth[smooth.length - 1] as { x: number; s: number };
    const slope = (b.s - a.s) / (b.x - a.x);
    const intercept = a.s - slope * a.x;
    // Configs state these as short decimals: round away the float32 noise of the factors.
    const high = Number((1 - 1 / intercept).toPrecision(6));
    candidates.push({ rope_type: 'llama3', factor: Number(factor.toPrecision(6)), low_freq_factor: 1, high_freq_factor: high, original_max_position_embeddings: Math.round(slope * (high - 1)) });
  }
  for (const original of [8192, 4096, 2048, 16384, 32768]) candidates.push({ rope_type: 'llama3', factor: Number(factor.toPrecision(6)), low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: original });
  const plain = inverseFrequencies(headDim, theta, null, 1).invFreq;
  for (const c of candidates) {
    const scaled = inverseFrequencies(headDim, theta, c, 1).invFreq;
    if (factors.every((f, i) => Math.abs((plain[i] as number) / (scaled[i] as number) - f) <= 1e-4 * f)) return c;
  }
  throw new GgufError(`${where}: rope_freqs.weight is not a Llama 3.1 (llama3) rope scaling deepen can reproduce`);
}

/** Reads a GGUF file into a deepen config, tensors and tokenizer; anything deepen does not implement is refused by name. */
export function readGgufModel(path: string): GgufModel {
  const file = readGguf(path);
  const arch = metaValue(file, 'general.architecture', 'string');
  if (arch === undefined) throw new GgufError(`${path}: has no general.architecture`);
  const known = FAMILY_OF_ARCH[arch];
  if (!known) throw new GgufError(`${path}: architecture '${arch}' is not one deepen implements (it reads ${Object.keys(FAMILY_OF_ARCH).join(', ')})`);
  for (const key of file.metadata.keys()) {
    if (!key.startsWith(`${arch}.`)) continue;
    const rest = key.slice(arch.length + 1);
    if (ARCH_KEYS.has(rest)) continue;
    if (rest in NEUTRAL_VALUES && metaValue(file, key, 'number') === NEUTRAL_VALUES[rest]) continue;
    throw new GgufError(`${path}: metadata ${key} is not implemented by deepen (it would change the model)`);
  }
  const need = (key: string) => {
    const v = metaValue(file, `${arch}.${key}`, 'number');
    if (v === undefined) throw new GgufError(`${path}: metadata ${arch}.${key} is missing`);
    return v;
  };
  const opt = (key: string) => metaValue(file, `${arch}.${key}`, 'number');
  const hidden = need('embedding_length');
  const heads = need('attention.head_count');
  const headDim = opt('attention.key_length') ?? hidden / heads;
  if ((opt('attention.value_length') ?? headDim) !== headDim) throw new GgufError(`${path}: key_length and value_length differ, which deepen does not implement`);
  if ((opt('rope.dimension_count') ?? headDim) !== headDim) throw new GgufError(`${path}: ${arch}.rope.dimension_count ${opt('rope.dimension_count')} rotates part of each head (partial rotary), which deepen does not implement`);
  const scalingType = metaValue(file, `${arch}.rope.scaling.type`, 'string') ?? 'none';
  let ropeScaling: RopeScaling | null = null;
  if (scalingType === 'linear') ropeScaling = { rope_type: 'linear', factor: need('rope.scaling.factor') };
  else if (scalingType !== 'none') throw new GgufError(`${path}: ${arch}.rope.scaling.type '${scalingType}' is not implemented by deepen's GGUF import`);
  else if ((opt('rope.scaling.factor') ?? 1) !== 1) throw new GgufError(`${path}: ${arch}.rope.scaling.factor ${opt('rope.scaling.factor')} without a scaling type is ambiguous; deepen does not guess how llama.cpp applies it`);

  const tensorTypes: Record<string, number> = {};
  const read = new Map<string, { shape: number[]; values: Float32Array; type: TensorTypeName }>();
  let ropeFactors: Float32Array | null = null;
  for (const info of file.tensors) {
    tensorTypes[info.typeName] = (tensorTypes[info.typeName] ?? 0) + 1;
    const type = readableType(info);
    if (type === null) throw new GgufError(`${path}: tensor ${info.name} is ${info.typeName}; deepen reads F32, F16, BF16 and Q8_0 (dequantize other types with llama.cpp's llama-quantize first)`);
    const count = info.dims.reduce((a, b) => a * b, 1);
    const values = decodeTensor(readTensorBytes(file, info), type, count);
    if (info.name === 'rope_freqs.weight') {
      ropeFactors = values;
      continue;
    }
    const name = hfName(info.name);
    if (name === null) throw new GgufError(`${path}: tensor ${info.name} is not part of a model deepen implements`);
    read.set(name, { shape: [...info.dims].reverse(), values, type });
  }
  if (ropeFactors) {
    if (arch !== 'llama' || ropeScaling !== null) throw new GgufError(`${path}: rope_freqs.weight with ${arch} and rope.scaling.type ${scalingType} is not implemented by deepen`);
    ropeScaling = llama3FromFactors(ropeFactors, headDim, opt('rope.freq_base') ?? 10000, path);
  }

  const tokenizer = tokenizerFromGguf(file);
  const embed = read.get(EMBED);
  if (!embed) throw new GgufError(`${path}: has no token_embd.weight`);
  const vocab = embed.shape[0] as number;
  const layers = need('block_count');
  const has = (suffix: string) => read.has(`model.layers.0.${suffix}`);
  const config = makeConfig({
    model_type: known.family,
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: need('feed_forward_length'),
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: opt('attention.head_count_kv') ?? heads,
    head_dim: headDim,
    rms_norm_eps: need('attention.layer_norm_rms_epsilon'),
    rope_theta: opt('rope.freq_base') ?? 10000,
    rope_scaling: ropeScaling,
    max_position_embeddings: need('context_length'),
    tie_word_embeddings: !read.has(LM_HEAD),
    attention_bias: known.family === 'qwen2' ? false : has(BLOCK.oBias) || (known.family === 'llama' && has(BLOCK.qBias)),
    mlp_bias: has(BLOCK.gateBias),
    bos_token_id: tokenizer.bos,
    eos_token_id: tokenizer.eos,
    pad_token_id: tokenizer.pad,
    deepen: { norm_scheme: 'pre', imported_from: { format: 'gguf', arch, tensor_types: tensorTypes } },
  });
  if (known.neighbourRope) {
    for (let i = 0; i < layers; i++) {
      for (const [suffix, n] of [[BLOCK.q, heads], [BLOCK.qBias, heads], [BLOCK.k, config.num_key_value_heads], [BLOCK.kBias, config.num_key_value_heads]] as const) {
        const t = read.get(`model.layers.${i}.${suffix}`);
        if (t) t.values = permuteRotaryRows(t.values, n, t.shape.length === 2 ? (t.shape[1] as number) : 1, false);
      }
    }
  }
  const types = new Set([...read.entries()].filter(([, t]) => t.shape.length === 2).map(([, t]) => t.type));
  const only = types.size === 1 ? [...types][0] : null;
  const exactDtype: StorageDtype = only === 'F16' ? 'F16' : only === 'BF16' ? 'BF16' : 'F32';
  return { config, tensors: new Map([...read].map(([n, t]) => [n, { shape: t.shape, values: t.values }])), tokenizer, arch, tensorTypes, exactDtype };
}

/** A deepen model of an imported GGUF (shapes checked against its config, as for any checkpoint). */
export function modelFromGguf(imported: GgufModel, source: string): LlamaModel {
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const [name, t] of imported.tensors) {
      tensors.set(name, tf.tidy(() => (isLinear(name) ? tf.transpose(tf.tensor(t.values, t.shape)) : tf.tensor(t.values, t.shape))));
    }
    return LlamaModel.fromTensors(imported.config, tensors, source);
  } finally {
    tf.dispose([...tensors.values()]);
  }
}

/**
 * Imports a GGUF file as a deepen checkpoint folder (config.json, safetensors in the dtype
 * that keeps the values exact, tokenizer.json and tokenizer_config.json), published
 * atomically at `dir`. Needs no tensor engine: the weights go from the file's bytes to the
 * folder's, checked against the shapes the config implies.
 */
export async function importGguf(path: string, dir: string): Promise<GgufModel> {
  const imported = readGgufModel(path);
  const { config, exactDtype: dtype } = imported;
  const expected = new Map(modelTensorShapes(config));
  const tensors: TensorToWrite[] = [];
  for (const [name, t] of imported.tensors) {
    const want = expected.get(name);
    if (!want) throw new GgufError(`${path}: tensor ${hfToGguf(name)} is not part of a ${config.num_hidden_layers}-layer ${config.model_type} model with this config`);
    const stored = isLinear(name) ? [want[1], want[0]] : want;
    if (t.shape.join(',') !== stored.join(',')) throw new GgufError(`${path}: tensor ${hfToGguf(name)} has shape [${[...t.shape].reverse()}] (ggml order), expected [${[...stored].reverse()}] from its metadata`);
    tensors.push({ name, dtype, shape: t.shape, bytes: encodeFloat32(t.values, dtype) });
  }
  const missing = [...expected.keys()].filter((n) => !imported.tensors.has(n));
  if (missing.length > 0) throw new GgufError(`${path}: missing tensor${missing.length > 1 ? 's' : ''} ${missing.map(hfToGguf).join(', ')}`);
  await writeCheckpoint(dir, configToJson(config, dtype), tensors, { files: imported.tokenizer.files });
  return imported;
}

const hfToGguf = (name: string) => ggufName(name) ?? name;

export type { GgufFile };
