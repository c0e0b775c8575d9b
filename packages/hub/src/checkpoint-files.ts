import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

// The file names of a deepen checkpoint folder (see @deepen/models and @deepen/trainer). The hub
// reads them as files only: it never loads a tensor.
export const CONFIG_FILE = 'config.json';
export const GENERATION_CONFIG_FILE = 'generation_config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';
export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';
export const SPECIAL_TOKENS_MAP_FILE = 'special_tokens_map.json';
export const CARD_FILE = 'README.md';
export const TRAINER_STATE_FILE = 'trainer_state.json';
export const PRUNE_REPORT_FILE = 'prune_report.json';
export const METRICS_FILE = 'metrics.jsonl';
export const RUN_FILE = 'run.json';
const CHECKPOINTS_DIR = 'checkpoints';

export interface CheckpointLocation {
  /** The checkpoint folder (absolute). */
  dir: string;
  /** The training run it belongs to (holding metrics.jsonl and run.json), if any. */
  runDir: string | null;
}

function isRunDir(dir: string): boolean {
  return existsSync(join(dir, METRICS_FILE)) || existsSync(join(dir, RUN_FILE));
}

/**
 * A checkpoint folder (anything with config.json) or a run folder, which means its newest
 * checkpoint under checkpoints/step-N.
 */
export function locateCheckpoint(path: string): CheckpointLocation {
  const full = resolve(path);
  if (existsSync(join(full, CONFIG_FILE))) {
    const parent = dirname(full);
    const runDir = basename(parent) === CHECKPOINTS_DIR && isRunDir(dirname(parent)) ? dirname(parent) : null;
    return { dir: full, runDir };
  }
  const checkpoints = join(full, CHECKPOINTS_DIR);
  const newest = existsSync(checkpoints)
    ? readdirSync(checkpoints)
        .filter((name) => /^step-\d+$/.test(name) && existsSync(join(checkpoints, name, CONFIG_FILE)))
        .sort()
        .at(-1)
    : undefined;
  if (newest === undefined) throw new Error(`${path}: not a checkpoint (no config.json) nor a run folder with checkpoints/`);
  return { dir: join(checkpoints, newest), runDir: full };
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

export interface SafetensorsSummary {
  parameters: number;
  dtypes: string[];
  tensors: number;
}

/**
 * Reads only the header of a safetensors file: tensor count, parameter count and dtypes, and
 * checks that the data section has exactly the size the header describes (a truncated or padded
 * file would be published broken otherwise).
 */
export function summarizeSafetensors(path: string): SafetensorsSummary {
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const prefix = Buffer.alloc(8);
    if (size < 8 || readSync(fd, prefix, 0, 8, 0) !== 8) throw new Error(`${path}: not a safetensors file (shorter than its 8-byte header length)`);
    const headerLength = Number(prefix.readBigUInt64LE(0));
    if (headerLength > size - 8 || headerLength > 100_000_000) throw new Error(`${path}: not a safetensors file (header length ${headerLength} exceeds the file)`);
    const header = Buffer.alloc(headerLength);
    readSync(fd, header, 0, headerLength, 8);
    let json: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    try {
      json = JSON.parse(header.toString('utf8'));
    } catch (error) {
      throw new Error(`${path}: safetensors header is not valid JSON (${(error as Error).message})`);
    }
    let parameters = 0;
    let end = 0;
    const dtypes = new Set<string>();
    let tensors = 0;
    for (const [name, t] of Object.entries(json)) {
      if (name === '__metadata__') continue;
      tensors++;
      parameters += t.shape.reduce((a, b) => a * b, 1);
      dtypes.add(t.dtype);
      end = Math.max(end, t.data_offsets[1]);
    }
    if (end !== size - 8 - headerLength) throw new Error(`${path}: truncated or corrupt (header describes ${end} data bytes, the file holds ${size - 8 - headerLength})`);
    return { parameters, dtypes: [...dtypes].sort(), tensors };
  } finally {
    closeSync(fd);
  }
}

/** The safetensors files of a checkpoint folder: the shards its index lists, or model.safetensors. Each must exist. */
export function weightFiles(dir: string): { index: string | null; files: string[] } {
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  const index = readJsonFile<{ weight_map?: Record<string, string> }>(indexPath);
  const files = index ? [...new Set(Object.values(index.weight_map ?? {}))].sort() : [WEIGHTS_FILE];
  if (index && files.length === 0) throw new Error(`${indexPath}: no weight_map`);
  for (const file of files) {
    if (file.includes('/') || file.includes('\\')) throw new Error(`${indexPath}: shard '${file}' must be a file in the same folder`);
    if (!existsSync(join(dir, file))) throw new Error(`${join(dir, file)}: weights file not found`);
  }
  return { index: index ? WEIGHTS_INDEX_FILE : null, files };
}
