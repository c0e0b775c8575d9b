import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, currentDir, writeDirDurable } from '@deepen/core';
import type { Corpus, Document } from './corpus.js';
import type { Tokenizer } from './tokenizer.js';

/** The token ids of one split, documents back to back; document d is tokens[offsets[d] .. offsets[d + 1]). */
export interface TokenizedSplit {
  tokens: Uint16Array | Uint32Array;
  offsets: Float64Array;
}

export interface TokenizedCorpus {
  train: TokenizedSplit;
  validation: TokenizedSplit;
  /** The cache entry's folder. */
  dir: string;
  /** Whether this call read the cache (true) or tokenized and wrote it (false). */
  fromCache: boolean;
}

const FORMAT = 1;

interface CacheIndex {
  format: number;
  key: string;
  corpus: string;
  corpusFingerprint: string;
  tokenizerFingerprint: string;
  dtype: 'uint16' | 'uint32';
  splits: Record<'train' | 'validation', { tokens: number; documents: number }>;
}

function tokenize(documents: Document[], tokenizer: Tokenizer, wide: boolean): TokenizedSplit {
  const chunks = documents.map((d) => tokenizer.encode(d.text));
  const offsets = new Float64Array(documents.length + 1);
  chunks.forEach((c, i) => (offsets[i + 1] = (offsets[i] as number) + c.length));
  const tokens = wide ? new Uint32Array(offsets[documents.length] as number) : new Uint16Array(offsets[documents.length] as number);
  chunks.forEach((c, i) => tokens.set(c, offsets[i] as number));
  return { tokens, offsets };
}

function readSplit(dir: string, name: string, index: CacheIndex): TokenizedSplit | null {
  const meta = index.splits[name as 'train' | 'validation'];
  const bytesPer = index.dtype === 'uint16' ? 2 : 4;
  const tokensPath = join(dir, `${name}.tokens.bin`);
  const offsetsPath = join(dir, `${name}.offsets.bin`);
  if (!existsSync(tokensPath) || !existsSync(offsetsPath)) return null;
  if (statSync(tokensPath).size !== meta.tokens * bytesPer || statSync(offsetsPath).size !== (meta.documents + 1) * 8) return null;
  const tokenBytes = readFileSync(tokensPath);
  const offsetBytes = readFileSync(offsetsPath);
  // Copy into fresh, aligned buffers (file buffers may come from a shared pool).
  const tokens = index.dtype === 'uint16' ? new Uint16Array(meta.tokens) : new Uint32Array(meta.tokens);
  new Uint8Array(tokens.buffer).set(tokenBytes);
  const offsets = new Float64Array(meta.documents + 1);
  new Uint8Array(offsets.buffer).set(offsetBytes);
  if (offsets[meta.documents] !== meta.tokens) return null;
  return { tokens, offsets };
}

/**
 * Token ids for both splits of a corpus, from a disk cache keyed by the corpus contents, the
 * tokenizer and the cache format; built (and written atomically) when missing, stale or
 * damaged. Ids are stored as uint16 when the vocabulary fits, else uint32.
 */
export async function tokenizeCorpus(corpus: Corpus, tokenizer: Tokenizer, options: { cacheDir?: string } = {}): Promise<TokenizedCorpus> {
  const key = createHash('sha256').update(`${FORMAT}\0${corpus.fingerprint}\0${tokenizer.fingerprint}`).digest('hex').slice(0, 24);
  const dir = join(options.cacheDir ?? cacheDir(), 'tokens', `${corpus.name.replace(/[^\w.+-]/g, '_')}-${key}`);
  const current = currentDir(dir);
  const indexPath = join(current, 'index.json');
  if (existsSync(indexPath)) {
    try {
      const index = JSON.parse(readFileSync(indexPath, 'utf8')) as CacheIndex;
      if (index.format === FORMAT && index.key === key) {
        const train = readSplit(current, 'train', index);
        const validation = readSplit(current, 'validation', index);
        if (train && validation) return { train, validation, dir, fromCache: true };
      }
    } catch {
      // Damaged entry: rebuilt below.
    }
  }
  const wide = tokenizer.vocabSize > 65536;
  const train = tokenize(corpus.train, tokenizer, wide);
  const validation = tokenize(corpus.validation, tokenizer, wide);
  const index: CacheIndex = {
    format: FORMAT,
    key,
    corpus: corpus.name,
    corpusFingerprint: corpus.fingerprint,
    tokenizerFingerprint: tokenizer.fingerprint,
    dtype: wide ? 'uint32' : 'uint16',
    splits: {
      train: { tokens: train.tokens.length, documents: train.offsets.length - 1 },
      validation: { tokens: validation.tokens.length, documents: validation.offsets.length - 1 },
    },
  };
  // Files written into the folder being built are fsynced by writeDirDurable before it is published.
  await writeDirDurable(dir, (tmp) => {
    for (const [name, split] of [['train', train], ['validation', validation]] as const) {
      writeFileSync(join(tmp, `${name}.tokens.bin`), new Uint8Array(split.tokens.buffer, split.tokens.byteOffset, split.tokens.byteLength));
      writeFileSync(join(tmp, `${name}.offsets.bin`), new Uint8Array(split.offsets.buffer));
    }
    writeFileSync(join(tmp, 'index.json'), `${JSON.stringify(index, null, 2)}\n`);
  });
  return { train, validation, dir, fromCache: false };
}
