import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { currentDir } from './durable.js';

/**
 * The layout of deepen's folders, named once for every package and app.
 *
 * A checkpoint folder is what Hugging Face transformers saves for a LlamaForCausalLM plus
 * deepen's extras:
 *   config.json  generation_config.json  model.safetensors | model-0000i-of-0000n.safetensors + model.safetensors.index.json
 *   tokenizer.json  [trainer_state.json  optimizer.safetensors]  [prune_report.json]  [README.md]
 * A training run folder holds its checkpoints and its records:
 *   run.json  metrics.jsonl  checkpoints/step-0000100/ ...
 */
export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
export const SPECIAL_TOKENS_MAP_FILE = 'special_tokens_map.json';
export const CARD_FILE = 'README.md';
export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const PRUNE_REPORT_FILE = 'prune_report.json';
export const METRICS_FILE = 'metrics.jsonl';
export const RUN_FILE = 'run.json';
export const ANALYSIS_REPORT_FILE = 'report.json';
export const CHECKPOINTS_DIR = 'checkpoints';

const STEP_DIR = /^step-\d+$/;

/** The folder name of the checkpoint after `step` optimizer steps: step-0000100. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(7, '0')}`;
}

/** The file name of shard `i` (1-based) of `n`, as transformers names them. */
export function shardFileName(i: number, n: number): string {
  const pad = (k: number) => String(k).padStart(5, '0');
  return `model-${pad(i)}-of-${pad(n)}.safetensors`;
}

/** Parses a JSON file, naming the file in any error; null when it does not exist. */
export function readJsonFile<T = Record<string, unknown>>(path: string): T | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

/** Whether a folder is a training run (it has run records). */
export function isRunDir(dir: string): boolean {
  return existsSync(join(dir, METRICS_FILE)) || existsSync(join(dir, RUN_FILE));
}

/**
 * The checkpoint folders of a run, oldest first (by step). Only complete checkpoints count:
 * temporaries of an interrupted save are hidden names, and a folder needs its config.json
 * (and trainer_state.json when `training` is set: checkpoints a run can resume from).
 */
export function listCheckpoints(runDir: string, options: { training?: boolean } = {}): string[] {
  const dir = join(runDir, CHECKPOINTS_DIR);
  if (!existsSync(dir)) return [];
  const entries = readdirSync(dir);
  const names = new Set(entries.filter((n) => STEP_DIR.test(n)));
  // A checkpoint caught between the two renames of a replacement still counts (see currentDir).
  for (const n of entries) {
    const m = /^\.(step-\d+)\.swap$/.exec(n);
    if (m) names.add(m[1]!);
  }
  return [...names]
    .sort()
    .map((n) => currentDir(join(dir, n)))
    .filter((d) => existsSync(join(d, CONFIG_FILE)) && (!options.training || existsSync(join(d, TRAINER_STATE_FILE))));
}

export interface CheckpointLocation {
  /** The checkpoint folder (absolute). */
  dir: string;
  /** The training run it belongs to (holding metrics.jsonl and run.json), if any. */
  runDir: string | null;
}

/**
 * A checkpoint folder (anything with config.json) or a run folder, which means its newest
 * checkpoint under checkpoints/step-N.
 */
export function locateCheckpoint(path: string): CheckpointLocation {
  const full = currentDir(resolve(path));
  if (existsSync(join(full, CONFIG_FILE))) return { dir: full, runDir: runDirOf(path) };
  const newest = listCheckpoints(full).at(-1);
  if (newest === undefined) throw new Error(`${path}: not a checkpoint (no ${CONFIG_FILE}) nor a run folder with ${CHECKPOINTS_DIR}/`);
  return { dir: newest, runDir: full };
}

/** The run folder a checkpoint folder belongs to (`<run>/checkpoints/step-N`), or null. */
export function runDirOf(checkpointDir: string): string | null {
  const parent = dirname(resolve(checkpointDir));
  return basename(parent) === CHECKPOINTS_DIR && isRunDir(dirname(parent)) ? dirname(parent) : null;
}

export interface WeightFiles {
  /** The index file's name, when the weights are sharded. */
  index: string | null;
  /** The safetensors files, sorted; each exists. */
  files: string[];
  /** Which file holds each tensor (from the index; empty for a single file). */
  weightMap: Record<string, string>;
}

/** The safetensors files of a checkpoint folder: the shards its index lists, or model.safetensors. */
export function weightFiles(dir: string): WeightFiles {
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  const index = readJsonFile<{ weight_map?: unknown }>(indexPath);
  if (index) {
    const map = index.weight_map;
    if (!map || typeof map !== 'object' || Array.isArray(map)) throw new Error(`${indexPath}: no weight_map`);
    const weightMap = map as Record<string, string>;
    const files = [...new Set(Object.values(weightMap))].sort();
    if (files.length === 0) throw new Error(`${indexPath}: weight_map is empty`);
    for (const file of files) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) throw new Error(`${indexPath}: shard '${String(file)}' must be a file in the same folder`);
      if (!existsSync(join(dir, file))) throw new Error(`${join(dir, file)}: weights file not found`);
    }
    return { index: WEIGHTS_INDEX_FILE, files, weightMap };
  }
  if (!existsSync(join(dir, WEIGHTS_FILE))) throw new Error(`${join(dir, WEIGHTS_FILE)}: weights file not found`);
  return { index: null, files: [WEIGHTS_FILE], weightMap: {} };
}
