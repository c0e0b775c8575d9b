import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { downloadFile, listFiles, modelInfo, type ListFileEntry } from '@huggingface/hub';
import {
  cacheDir,
  CARD_FILE,
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  readJsonFile,
  SPECIAL_TOKENS_MAP_FILE,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
  writeDirDurable,
  writeFileDurable,
} from '@deepen/core';
import { explainHubError, HubError, type ErrorContext } from './errors.js';
import { networkErrorCode, withRetries, type RetryNotice, type RetryOptions } from './http.js';
import { formatHubRef, hubUrlFrom, validateRepoId } from './repo.js';
import { resolveToken, type ResolvedToken } from './token.js';

type Env = Record<string, string | undefined>;

export interface DownloadOptions {
  /** Branch, tag or commit. Default main. */
  revision?: string;
  /** Default: $DEEPEN_CACHE/hub, else $XDG_CACHE_HOME/deepen/hub, else ~/.cache/deepen/hub. */
  cacheDir?: string;
  /** Needed for private or gated repositories. Default: $HF_TOKEN, else the Hugging Face token file. */
  token?: string | ResolvedToken;
  /** Default: $HF_ENDPOINT, else https://huggingface.co. */
  hubUrl?: string;
  /** Use only the cache (also when $HF_HUB_OFFLINE is 1). */
  offline?: boolean;
  onProgress?: (event: DownloadProgress) => void;
  onRetry?: (notice: RetryNotice) => void;
  /** Told when the Hub cannot be reached and a cached copy of the revision is used instead. */
  onWarning?: (message: string) => void;
  retry?: RetryOptions;
  fetch?: typeof fetch;
  env?: Env;
}

export interface DownloadProgress {
  path: string;
  size: number;
  received: number;
}

/** Where downloaded checkpoints are kept, one folder per repository and commit. */
export function defaultHubCacheDir(env: Env = process.env): string {
  return cacheDir('hub', env);
}

/** The cache folder of a repository, named as Hugging Face's own cache names it. */
export function repoCacheDir(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.replace('/', '--')}`);
}

const COMMIT = /^[0-9a-f]{40}$/;

/** The files a checkpoint needs, at the top of the repository; other files (other formats, images) are not fetched. */
const CHECKPOINT_FILES = new Set([CONFIG_FILE, GENERATION_CONFIG_FILE, TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, CARD_FILE, WEIGHTS_INDEX_FILE, WEIGHTS_FILE]);

function isOffline(option: boolean | undefined, env: Env): boolean {
  return option ?? /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '');
}

/** Streams one file to `path`, checking its size and hash against the listing (sha256 for large files, the git blob sha1 otherwise). */
async function fetchVerified(blob: Blob, entry: ListFileEntry, path: string, onBytes: (received: number) => void): Promise<void> {
  const expected = entry.lfs ? { algorithm: 'sha256', digest: entry.lfs.oid, size: entry.lfs.size } : { algorithm: 'sha1', digest: entry.oid, size: entry.size };
  const hash = createHash(expected.algorithm);
  if (!entry.lfs) hash.update(`blob ${entry.size}\0`);
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      received += chunk.byteLength;
      hash.update(chunk);
      onBytes(received);
      done(null, chunk);
    },
  });
  const out = createWriteStream(path, { flush: true });
  await pipeline(Readable.fromWeb(blob.stream() as NodeReadableStream<Uint8Array>), meter, out);
  if (received !== expected.size) throw new Error(`${entry.path}: received ${received} bytes, the Hub lists ${expected.size}`);
  const digest = hash.digest('hex');
  if (expected.digest && digest !== expected.digest) throw new Error(`${entry.path}: content does not match the Hub's ${expected.algorithm} (got ${digest}, expected ${expected.digest})`);
}

/**
 * Fetches a checkpoint from a Hub model repository into the local cache and returns its folder
 * (`<cache>/models--owner--name/snapshots/<commit>`). A revision already cached is reused: a
 * commit id without asking the Hub, a branch or tag after one request to learn its commit. Files
 * are verified against the Hub's hashes, and a snapshot appears in the cache only complete.
 */
export async function download(repo: string, options: DownloadOptions = {}): Promise<string> {
  validateRepoId(repo);
  const env = options.env ?? process.env;
  const revision = options.revision ?? 'main';
  const root = repoCacheDir(options.cacheDir ?? defaultHubCacheDir(env), repo);
  const snapshotOf = (commit: string) => join(root, 'snapshots', commit);
  const refPath = join(root, 'refs', revision);
  const cachedCommit = () => (COMMIT.test(revision) ? revision : existsSync(refPath) ? readFileSync(refPath, 'utf8').trim() : null);
  const ref = formatHubRef({ repo, revision });

  if (COMMIT.test(revision) && existsSync(snapshotOf(revision))) return snapshotOf(revision);
  if (isOffline(options.offline, env)) {
    const commit = cachedCommit();
    if (commit && existsSync(snapshotOf(commit))) return snapshotOf(commit);
    throw new HubError(`${ref} is not in the cache (${root}) and downloads are off ($HF_HUB_OFFLINE or offline)`, 'network', null);
  }

  const hubUrl = hubUrlFrom(options.hubUrl, env);
  const token = resolveToken(options.token, env);
  const retries = options.retry?.retries ?? 4;
  const fetchFn = withRetries(options.fetch ?? fetch, options.retry, options.onRetry);
  const common = { hubUrl, fetch: fetchFn, ...(token ? { accessToken: token.value } : {}) };
  const ctx: ErrorContext = { action: '', repo, ...(options.revision ? { revision } : {}), hubUrl, token, access: 'read', retries };
  const step = async <T>(action: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw explainHubError(error, { ...ctx, action });
    }
  };

  let commit: string;
  try {
    commit = await step(`looking up ${ref}`, async () => (await modelInfo({ name: repo, revision, additionalFields: ['sha'], ...common })).sha as string);
  } catch (error) {
    const cached = cachedCommit();
    if (error instanceof HubError && error.kind === 'network' && cached && existsSync(snapshotOf(cached))) {
      options.onWarning?.(`${error.message}; using the cached ${ref} (commit ${cached})`);
      return snapshotOf(cached);
    }
    throw error;
  }
  if (typeof commit !== 'string' || !COMMIT.test(commit)) throw new HubError(`looking up ${ref}: the Hub returned no commit id`, 'failed', null);
  const snapshot = snapshotOf(commit);

  if (!existsSync(snapshot)) {
    const listing = await step(`listing the files of ${ref}`, async () => {
      const entries: ListFileEntry[] = [];
      for await (const entry of listFiles({ repo, revision: commit, ...common })) if (entry.type === 'file') entries.push(entry);
      return entries;
    });
    const byPath = new Map(listing.map((e) => [e.path, e]));
    if (!byPath.has(CONFIG_FILE)) throw new HubError(`${ref} has no ${CONFIG_FILE}: not a model checkpoint`, 'not-found', null);
    if (!byPath.has(WEIGHTS_INDEX_FILE) && !byPath.has(WEIGHTS_FILE)) {
      throw new HubError(`${ref} has no safetensors weights (${WEIGHTS_FILE} or ${WEIGHTS_INDEX_FILE}); deepen reads only safetensors`, 'not-found', null);
    }

    const fetchInto = async (dir: string, entry: ListFileEntry) => {
      const target = join(dir, entry.path);
      const size = entry.lfs?.size ?? entry.size;
      for (let attempt = 1; ; attempt++) {
        try {
          const blob = await step(`downloading ${entry.path} of ${ref}`, async () => {
            const b = await downloadFile({ repo, path: entry.path, revision: commit, xet: false, ...common });
            if (!b) throw new HubError(`${ref}: ${entry.path} is listed but cannot be downloaded`, 'not-found', 404);
            return b;
          });
          await fetchVerified(blob, entry, target, (received) => options.onProgress?.({ path: entry.path, size, received }));
          return;
        } catch (error) {
          // The connection can also drop in the middle of the body, after fetch has returned.
          if (error instanceof HubError || networkErrorCode(error) === null || attempt > retries) {
            throw error instanceof HubError ? error : explainHubError(error, { ...ctx, action: `downloading ${entry.path} of ${ref}` });
          }
          options.onRetry?.({ request: `GET ${entry.path}`, attempt, reason: networkErrorCode(error)!, delayMs: 0 });
        }
      }
    };

    // A snapshot is named by its commit, so it is never replaced: the first complete download wins.
    await writeDirDurable(snapshot, async (dir) => {
      const wanted = listing.filter((e) => CHECKPOINT_FILES.has(e.path));
      const index = byPath.get(WEIGHTS_INDEX_FILE);
      if (index) {
        // Shards come from the index, so other safetensors files in the repository are skipped.
        await fetchInto(dir, index);
        const weightMap = readJsonFile<{ weight_map?: Record<string, string> }>(join(dir, WEIGHTS_INDEX_FILE))?.weight_map ?? {};
        for (const shard of new Set(Object.values(weightMap))) {
          const entry = byPath.get(shard);
          if (!entry) throw new HubError(`${ref}: ${WEIGHTS_INDEX_FILE} names ${shard}, which the repository does not have`, 'not-found', null);
          wanted.push(entry);
        }
      }
      for (const entry of wanted) if (entry !== index && !(index && entry.path === WEIGHTS_FILE)) await fetchInto(dir, entry);
    }, { ifExists: 'keep' });
  }
  if (revision !== commit) writeFileDurable(refPath, commit);
  return snapshot;
}
