import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where deepen keeps trained tokenizers and tokenized corpora: $DEEPEN_CACHE, else $XDG_CACHE_HOME/deepen, else ~/.cache/deepen. */
export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  if (env.DEEPEN_CACHE) return env.DEEPEN_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'deepen');
}
