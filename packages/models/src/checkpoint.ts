import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { tidyValues } from '@deepen/backend';
import {
  CONFIG_FILE,
  currentDir,
  encodeFloat32,
  GENERATION_CONFIG_FILE,
  parseSafetensors,
  readJsonFile,
  serializeSafetensors,
  shardFileName,
  tensorToFloat32,
  weightFiles,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
  writeDirDurable,
  writeFileChunks,
  type FileData,
  type StorageDtype,
  type TensorToWrite,
} from '@deepen/core';
import { configFromJson, configToJson, layerDepth, schemeOf, type LlamaConfig } from './config.js';
import { LlamaModel, modelTensorShapes } from './model.js';
import { BLOCK, LM_HEAD, isLinear, layerPrefix } from './names.js';

export interface SaveOptions {
  /** Storage precision of the weights. Default F32. */
  dtype?: StorageDtype;
  /** Split the weights into shards of at most this many bytes (plus an index). Default 2 GiB. */
  maxShardBytes?: number;
  /**
   * Write a plain Pre-LN LLaMA that stock runtimes reproduce: LNS factors fold into the norm
   * weights, LayerScale/SkipInit gates into o_proj/down_proj. Fails for schemes that cannot fold.
   */
  fold?: boolean;
  /** More files to place in the folder, e.g. { 'tokenizer.json': text }. */
  files?: Record<string, FileData>;
}

/** One tensor of a model in checkpoint layout; its values are computed when asked for. */
export interface CheckpointTensor {
  name: string;
  shape: number[];
  values: () => Float32Array;
}

/** Whether every block is a plain LLaMA block (no scale, gate, other wiring). */
function isPlainLlama(model: LlamaModel): boolean {
  return Array.from({ length: model.config.num_hidden_layers }, (_, i) => model.plan(i)).every(
    (p) => p.wiring === 'pre' && p.normScale === 1 && p.residualScale === 1 && p.gate.kind === 'none',
  );
}

/**
 * The model's tensors in checkpoint layout (Hugging Face names, [out, in] linears), folded
 * into a plain Pre-LN LLaMA when asked: LNS factors into the norm weights, LayerScale/SkipInit
 * gates into o_proj/down_proj (and their biases). Each tensor is computed when its `values` is
 * called, so a writer holds one tensor at a time. Folding a scheme that cannot fold throws.
 */
export function checkpointTensors(model: LlamaModel, options: { fold?: boolean } = {}): CheckpointTensor[] {
  const fold = options.fold ?? false;
  if (fold) assertFoldable(model);
  const layerOf = (name: string): number | null => {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    return m ? Number(m[1]) : null;
  };
  // The factor a tensor is multiplied by when folded (null: none), as a tensor or a number.
  const foldFactor = (name: string): tf.Tensor | number | null => {
    const layer = layerOf(name);
    if (!fold || layer === null) return null;
    const plan = model.plan(layer);
    const suffix = name.slice(layerPrefix(layer).length);
    if (plan.normScale !== 1 && (suffix === BLOCK.attnNorm || suffix === BLOCK.mlpNorm)) return plan.normScale;
    if (plan.gate.kind !== 'none') {
      // g * (x W) == x (W * g) with W stored [in, out]: scale the output columns;
      // g * (x W + b) == x (W * g) + b * g: a family's output bias scales too.
      if (suffix === BLOCK.o || suffix === BLOCK.oBias) return model.param(layerPrefix(layer) + BLOCK.attnGate);
      if (suffix === BLOCK.down || suffix === BLOCK.downBias) return model.param(layerPrefix(layer) + BLOCK.mlpGate);
    }
    return null;
  };
  const out: CheckpointTensor[] = [];
  for (const [name, variable] of model.params) {
    if (fold && (name.endsWith(BLOCK.attnGate) || name.endsWith(BLOCK.mlpGate))) continue;
    const folded = () => {
      const factor = foldFactor(name);
      return factor === null ? variable : tf.mul(variable, factor);
    };
    if (isLinear(name)) {
      const [inDim, outDim] = variable.shape as [number, number];
      out.push({ name, shape: [outDim, inDim], values: () => tidyValues(() => tf.transpose(folded())) as Float32Array });
    } else {
      out.push({ name, shape: [...variable.shape], values: () => (foldFactor(name) === null ? (variable.dataSync() as Float32Array) : (tidyValues(folded) as Float32Array)) });
    }
  }
  return out;
}

function assertFoldable(model: LlamaModel): void {
  if (!model.scheme.foldable) {
    throw new Error(
      `cannot fold norm scheme '${model.scheme.name}' into a plain LLaMA: its blocks scale the residual or normalise after it; save without fold (deepen will load it)`,
    );
  }
}

/** The config.json of a model folded into a plain Pre-LN LLaMA (see checkpointTensors). */
export function foldedConfig(model: LlamaModel): LlamaConfig {
  assertFoldable(model);
  return { ...model.config, deepen: { norm_scheme: 'pre', folded_from: model.scheme.name, stock_runtime_compatible: true } };
}

function savedConfig(model: LlamaModel, fold: boolean, dtype: StorageDtype): Record<string, unknown> {
  const config = model.config;
  if (fold) return configToJson(foldedConfig(model), dtype);
  const plain = isPlainLlama(model);
  return configToJson({
    ...config,
    deepen: {
      ...config.deepen,
      stock_runtime_compatible: plain,
      ...(plain
        ? {}
        : {
            note: model.scheme.foldable
              ? `norm scheme '${model.scheme.name}' is not plain Pre-LN: stock LLaMA runtimes ignore this block and will not reproduce the model; export with fold to get one they do`
              : `norm scheme '${model.scheme.name}' has no Pre-LN equivalent: only deepen reproduces this model`,
          }),
    },
  }, dtype);
}

/**
 * Writes a checkpoint folder: config.json (HF keys + deepen block; torch_dtype names the
 * storage dtype), generation_config.json, model.safetensors (or shards + index) and any extra
 * files. Every file is fsynced before the folder is published under `dir`: at every instant
 * `dir` is the old complete checkpoint or the new one, never a partial folder (see
 * @deepen/core's writeDirDurable).
 */
export async function saveCheckpoint(model: LlamaModel, dir: string, options: SaveOptions = {}): Promise<void> {
  const dtype = options.dtype ?? 'F32';
  const fold = options.fold ?? false;
  const config = savedConfig(model, fold, dtype);
  const tensors: TensorToWrite[] = checkpointTensors(model, { fold }).map((t) => ({ name: t.name, dtype, shape: t.shape, bytes: encodeFloat32(t.values(), dtype) }));
  await writeCheckpoint(dir, config, tensors, options);
}

/**
 * Writes a checkpoint folder from a config.json object and tensors already in checkpoint
 * layout (what saveCheckpoint does for a model, and an importer for weights from elsewhere):
 * config.json, generation_config.json (from the config's token ids), model.safetensors or
 * shards with their index, and `options.files`; published atomically at `dir`.
 */
export async function writeCheckpoint(dir: string, config: Record<string, unknown>, tensors: TensorToWrite[], options: Pick<SaveOptions, 'maxShardBytes' | 'files'> = {}): Promise<void> {
  const maxShard = options.maxShardBytes ?? 2 * 1024 ** 3;
  const shards: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let currentBytes = 0;
  for (const t of [...tensors].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (current.length > 0 && currentBytes + t.bytes.byteLength > maxShard) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(t);
    currentBytes += t.bytes.byteLength;
  }
  if (current.length > 0) shards.push(current);

  await writeDirDurable(dir, (tmp) => {
    const write = (file: string, data: FileData) => writeFileChunks(join(tmp, file), data);
    write(CONFIG_FILE, `${JSON.stringify(config, null, 2)}\n`);
    const generation = { bos_token_id: config.bos_token_id ?? null, eos_token_id: config.eos_token_id ?? null, pad_token_id: config.pad_token_id ?? null };
    write(GENERATION_CONFIG_FILE, `${JSON.stringify(generation, null, 2)}\n`);
    const metadata = { format: 'pt' };
    if (shards.length === 1) {
      write(WEIGHTS_FILE, serializeSafetensors(shards[0] as TensorToWrite[], metadata));
    } else {
      const weightMap: Record<string, string> = {};
      shards.forEach((shard, i) => {
        const file = shardFileName(i + 1, shards.length);
        for (const t of shard) weightMap[t.name] = file;
        write(file, serializeSafetensors(shard, metadata));
      });
      const totalSize = tensors.reduce((a, t) => a + t.bytes.byteLength, 0);
      write(WEIGHTS_INDEX_FILE, `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`);
    }
    for (const [file, data] of Object.entries(options.files ?? {})) write(file, data);
  });
}

function readJson(path: string): unknown {
  const value = readJsonFile<unknown>(path);
  if (value === null) throw new Error(`${path}: file not found`);
  return value;
}

/** Reads config.json of a checkpoint folder (ours or a Hugging Face LLaMA). */
export function readCheckpointConfig(dir: string): LlamaConfig {
  const path = join(currentDir(dir), CONFIG_FILE);
  return configFromJson(readJson(path), path);
}

/** Tensors that checkpoints of other tools carry but a model does not need. */
const IGNORED_TENSORS = /\.rotary_emb\.inv_freq$/;

/**
 * Loads a checkpoint folder into a model. Hugging Face LLaMA folders (tied or untied head,
 * GQA, F32/F16/BF16, sharded or not) load as Pre-LN models. Any problem names the file and
 * the tensor.
 */
export function loadCheckpoint(path: string): LlamaModel {
  // The folder that stands for `path` now (the new one, in the instant of a replacement).
  const dir = currentDir(path);
  if (!existsSync(dir)) throw new Error(`${path}: checkpoint folder not found`);
  const config = readCheckpointConfig(dir);
  const { files } = weightFiles(dir);

  const expected = new Map(modelTensorShapes(config, schemeOf(config)));
  const found = new Map<string, { file: string; shape: number[]; values: Float32Array }>();
  for (const file of files) {
    const filePath = join(dir, file);
    const parsed = parseSafetensors(readFileSync(filePath), filePath);
    for (const [name, t] of parsed.tensors) {
      if (IGNORED_TENSORS.test(name)) continue;
      if (name === LM_HEAD && config.tie_word_embeddings) continue; // some exporters write the tied head too
      const where = `${filePath}: tensor ${name}`;
      const want = expected.get(name);
      if (!want) throw new Error(`${where} is not part of a ${config.num_hidden_layers}-layer '${config.deepen.norm_scheme}' model`);
      const stored = isLinear(name) ? [want[1], want[0]] : want;
      if (t.shape.join(',') !== stored.join(',')) throw new Error(`${where} has shape [${t.shape}], expected [${stored}] from config.json`);
      found.set(name, { file: filePath, shape: t.shape, values: tensorToFloat32(t, where) });
    }
  }
  const missing = [...expected.keys()].filter((n) => !found.has(n));
  if (missing.length > 0) throw new Error(`${dir}: missing tensor${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (looked in ${files.join(', ')})`);

  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const [name, t] of found) {
      tensors.set(name, tf.tidy(() => (isLinear(name) ? tf.transpose(tf.tensor(t.values, t.shape)) : tf.tensor(t.values, t.shape))));
    }
    return LlamaModel.fromTensors(config, tensors, path);
  } finally {
    tf.dispose([...tensors.values()]);
  }
}

/** The 1-based depth of each layer (for reports on pruned models). */
export function layerDepths(config: LlamaConfig): number[] {
  return Array.from({ length: config.num_hidden_layers }, (_, i) => layerDepth(config, i));
}
