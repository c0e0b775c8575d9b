import { homedir } from 'node:os';
import { join } from 'node:path';

export type Env = Record<string, string | undefined>;

/**
 * Where deepen keeps what it can rebuild (trained tokenizers, tokenized corpora, downloaded
 * checkpoints): $DEEPEN_CACHE, else $XDG_CACHE_HOME/deepen, else ~/.cache/deepen. `part`
 * names a subfolder, e.g. cacheDir('hub').
 */
export function cacheDir(part?: string, env: Env = process.env): string {
  const root = env.DEEPEN_CACHE || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'deepen');
  return part === undefined ? root : join(root, part);
}
