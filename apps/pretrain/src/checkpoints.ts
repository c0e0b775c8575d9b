import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Tokenizer } from '@deepen/data';
import { locateCheckpoint } from '@deepen/core';
import { download, formatBytes, formatHubRef, isHubRef, parseHubRef } from '@deepen/hub';
import { loadCheckpoint, type LlamaModel } from '@deepen/models';
import { UsageError } from './flags.js';

/** For command help: what a CHECKPOINT argument may be. */
export const CHECKPOINT_HELP = 'CHECKPOINT is a checkpoint folder, a run folder (its newest checkpoint) or hf:owner/name[@revision] (downloaded into the cache).';

/** Notes on a Hub download go to stderr, so --json output on stdout stays parseable. */
const note = (line: string) => process.stderr.write(`${line}\n`);

/**
 * A checkpoint argument as a folder: a run folder (its newest checkpoint), a checkpoint folder,
 * or `hf:owner/name[@revision]`, fetched into the local cache (reused when already there).
 */
export async function checkpointDir(arg: string): Promise<string> {
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
