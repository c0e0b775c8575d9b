import { createHash } from 'node:crypto';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Tokenizer } from '@deepen/data';
import { cacheDir, CONFIG_FILE, currentDir, locateCheckpoint, summarizeSafetensors, weightFiles, type StorageDtype } from '@deepen/core';
import { GgufError, importGguf, isGgufPath } from '@deepen/gguf';
import { download, formatBytes, formatHubRef, isHubRef, parseHubRef } from '@deepen/hub';
import { loadCheckpoint, type LlamaModel } from '@deepen/models';
import { UsageError } from './flags.js';

/** For command help: what a CHECKPOINT argument may be. */
export const CHECKPOINT_HELP = 'CHECKPOINT is a checkpoint folder, a run folder (its newest checkpoint), hf:owner/name[@revision] (downloaded into the cache) or a .gguf file (F32, F16, BF16 or Q8_0; imported into the cache).';

/** Notes on a Hub download go to stderr, so --json output on stdout stays parseable. */
const note = (line: string) => process.stderr.write(`${line}\n`);

/**
 * A .gguf file as a checkpoint folder: imported into the cache the first time (weights
 * dequantized into safetensors, tokenizer rebuilt from the metadata), reused while the file
 * keeps its path, size and modification time.
 */
async function ggufCheckpointDir(path: string): Promise<string> {
  if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`${path}: GGUF file not found`);
  const stat = statSync(path);
  const key = createHash('sha256').update(`${realpathSync(path)}\0${stat.size}\0${stat.mtimeMs}`).digest('hex').slice(0, 16);
  const dir = join(cacheDir('gguf'), `${basename(path).replace(/\.gguf$/i, '')}-${key}`);
  if (existsSync(join(currentDir(dir), CONFIG_FILE))) return currentDir(dir);
  try {
    const imported = await importGguf(path, dir);
    const types = Object.entries(imported.tensorTypes).map(([t, n]) => `${n} ${t}`).join(', ');
    note(`imported ${path} (llama.cpp ${imported.arch}; tensors ${types}) into ${dir}`);
  } catch (error) {
    if (error instanceof GgufError) throw new UsageError(error.message);
    throw error;
  }
  return dir;
}

/**
 * A checkpoint argument as a folder: a run folder (its newest checkpoint), a checkpoint folder,
 * `hf:owner/name[@revision]`, fetched into the local cache (reused when already there), or a
 * .gguf file, imported into the cache.
 */
export async function checkpointDir(arg: string): Promise<string> {
  if (isGgufPath(arg)) return ggufCheckpointDir(arg);
  if (isHubRef(arg)) {
    let ref;
    try {
      ref = parseHubRef(arg);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    return download(ref.repo, {
      ...(ref.revision ? { revision: ref.revision } : {}),
      onProgress: (p) => p.received === p.size && note(`downloaded ${ref.repo}: ${p.path} (${formatBytes(p.size)})`),
      onRetry: (r) => note(`retrying ${r.request} (${r.reason})`),
      onWarning: note,
    });
  }
  try {
    return locateCheckpoint(arg).dir;
  } catch {
    throw new UsageError(`${arg}: not a checkpoint (no config.json) nor a run folder with checkpoints/`);
  }
}

/**
 * Where a checkpoint came from, for provenance records (a pruned model's config): the Hub
 * reference pinned to the downloaded commit, or the folder.
 */
export function checkpointSource(arg: string, dir: string): string {
  if (isGgufPath(arg)) return resolve(arg);
  return isHubRef(arg) ? formatHubRef({ repo: parseHubRef(arg).repo, revision: basename(dir) }) : dir;
}

/** A checkpoint's model and its tokenizer.json (unless `tokenizer: false`); problems become usage errors. */
export function openCheckpoint(dir: string): { model: LlamaModel; tokenizer: Tokenizer };
export function openCheckpoint(dir: string, options: { tokenizer: false }): { model: LlamaModel };
export function openCheckpoint(dir: string, options: { tokenizer?: boolean } = {}): { model: LlamaModel; tokenizer?: Tokenizer } {
  const tokenizerPath = join(dir, 'tokenizer.json');
  const wantTokenizer = options.tokenizer !== false;
  if (wantTokenizer && !existsSync(tokenizerPath)) throw new UsageError(`${dir} has no tokenizer.json; pass --tokenizer PATH`);
  try {
    // The folder, as transformers reads it: tokenizer_config.json's special tokens, framing and chat template too.
    const tokenizer = wantTokenizer ? Tokenizer.fromDir(dir) : undefined;
    return { model: loadCheckpoint(dir), ...(tokenizer ? { tokenizer } : {}) };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The precision a checkpoint's weights are stored in: the dtype of all its weight files
 * (model.safetensors, or every shard its index lists), F32 when they are mixed. What an
 * export or a folded upload keeps by default.
 */
export function storedDtype(dir: string): StorageDtype {
  const dtypes = [...new Set(weightFiles(dir).files.flatMap((f) => summarizeSafetensors(join(dir, f)).dtypes))];
  return dtypes.length === 1 && (dtypes[0] === 'F16' || dtypes[0] === 'BF16') ? dtypes[0] : 'F32';
}
