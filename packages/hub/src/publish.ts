import { copyFileSync, existsSync, openAsBlob, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { commitIter, createBranch, createRepo, HubApiError, listFiles, repoExists, type CommitOperation } from '@huggingface/hub';
import {
  analysisEntryFor,
  CARD_FILE,
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  locateCheckpoint,
  readJsonFile,
  readTrainingHistory,
  SPECIAL_TOKENS_MAP_FILE,
  summarizeSafetensors,
  TOKENIZER_CONFIG_FILE,
  TOKENIZER_FILE,
  WEIGHTS_INDEX_FILE,
  weightFiles,
  writeDirDurable,
  writeFileChunks,
  type CheckpointLocation,
} from '@deepen/core';
import { modelCard, pruneFacts, type ModelCardOptions } from './card.js';
import { explainHubError, HubError, type ErrorContext } from './errors.js';
import { withRetries, withUploadProgress, type RetryNotice, type RetryOptions } from './http.js';
import { hubUrlFrom, validateRepoId } from './repo.js';
import { resolveToken, tokenHelp, type ResolvedToken } from './token.js';

export interface PublishOptions {
  /** Target model repository, `owner/name`. Created (private or public) if it does not exist. */
  repo: string;
  /**
   * Access token with write permission, optionally with where it came from (messages name the
   * source, never the token). Default: $HF_TOKEN, else the Hugging Face token file.
   */
  token?: string | ResolvedToken;
  /** Create the repository private. Applies only when publish creates it. */
  private?: boolean;
  /** Branch to commit to; created from the default branch if missing. Default main. */
  revision?: string;
  commitMessage?: string;
  /** Default: $HF_ENDPOINT, else https://huggingface.co. */
  hubUrl?: string;
  /**
   * A folder whose config.json, generation_config.json and safetensors replace the checkpoint's
   * own in the upload, e.g. a folded export of the same model. The tokenizer, training history
   * and card facts still come from the checkpoint.
   */
  weightsDir?: string;
  /** An analyze report (folder or report.json) whose entry for this checkpoint goes on the card. */
  report?: string;
  /** GGUF files to publish beside the safetensors (`path` in the repository, `source` on disk), listed on the card with how to run them. */
  gguf?: Array<{ path: string; source: string; dtype: string }>;
  card?: ModelCardOptions;
  /** Write the exact upload into this folder instead of uploading (it must be absent or empty). */
  dryRun?: string;
  onProgress?: (event: PublishProgress) => void;
  onRetry?: (notice: RetryNotice) => void;
  retry?: RetryOptions;
  /** The fetch to use (a proxy, say). */
  fetch?: typeof fetch;
  env?: Record<string, string | undefined>;
}

/** One file of an upload; `source` is the local file, or null for generated ones (card, tokenizer_config.json). */
export interface PublishFile {
  path: string;
  size: number;
  source: string | null;
}

export type PublishProgress =
  | { kind: 'phase'; phase: 'checking' | 'hashing' | 'uploading' | 'committing' }
  | { kind: 'file'; path: string; size: number; state: 'hashing' | 'uploading'; fraction: number };

export interface PublishResult {
  repo: string;
  revision: string;
  files: PublishFile[];
  /** The checkpoint folder that was published (a run folder resolves to its newest checkpoint). */
  checkpoint: string;
  /** Null for a dry run. */
  commit: { oid: string; url: string } | null;
  /** Whether publish created the repository. */
  created: boolean;
  /** Weight files of an earlier upload that this commit deleted (they would shadow the new ones). */
  deleted: string[];
  /** The repository (or revision) page, or the dry-run folder. */
  url: string;
}

interface PlannedFile extends PublishFile {
  content: Uint8Array | null;
}

export interface PublishPlan {
  location: CheckpointLocation;
  files: PlannedFile[];
  card: string;
}

/** tokenizer_config.json for stock loaders: the fast tokenizer from tokenizer.json, with the special tokens config.json names. */
function tokenizerConfig(tokenizerPath: string, config: Record<string, unknown>): string {
  const tokenizer = readJsonFile<{ added_tokens?: Array<{ id: number; content: string }>; model?: { unk_token?: unknown } }>(tokenizerPath);
  const byId = new Map((tokenizer?.added_tokens ?? []).map((t) => [t.id, t.content]));
  const token = (key: string) => {
    const id = config[key];
    return typeof id === 'number' ? byId.get(id) : undefined;
  };
  const unk = tokenizer?.model?.unk_token;
  const json = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    ...(token('bos_token_id') !== undefined ? { bos_token: token('bos_token_id') } : {}),
    ...(token('eos_token_id') !== undefined ? { eos_token: token('eos_token_id') } : {}),
    ...(token('pad_token_id') !== undefined ? { pad_token: token('pad_token_id') } : {}),
    ...(typeof unk === 'string' ? { unk_token: unk } : {}),
    model_max_length: config.max_position_embeddings,
    clean_up_tokenization_spaces: false,
  };
  return `${JSON.stringify(json, null, 2)}\n`;
}

/**
 * Everything publish would upload, without touching the network: the checkpoint's config,
 * weights and tokenizer (never optimizer or trainer state) and a generated model card.
 * Problems with the checkpoint (missing files, truncated weights) are found here.
 */
export function planPublish(path: string, options: Pick<PublishOptions, 'repo' | 'revision' | 'weightsDir' | 'report' | 'card' | 'gguf'>): PublishPlan {
  validateRepoId(options.repo);
  const location = locateCheckpoint(path);
  const weightsDir = options.weightsDir ? resolve(options.weightsDir) : location.dir;
  const sourceConfig = readJsonFile(join(location.dir, CONFIG_FILE))!;
  const config = readJsonFile(join(weightsDir, CONFIG_FILE));
  if (config === null) throw new Error(`${join(weightsDir, CONFIG_FILE)}: file not found`);
  const tokenizerPath = join(location.dir, TOKENIZER_FILE);
  if (!existsSync(tokenizerPath)) throw new Error(`${location.dir} has no ${TOKENIZER_FILE}: a published model needs its tokenizer`);

  const files: PlannedFile[] = [];
  const add = (dir: string, name: string) => files.push({ path: name, size: statSync(join(dir, name)).size, source: join(dir, name), content: null });
  const generate = (name: string, text: string) => {
    const content = Buffer.from(text, 'utf8');
    files.push({ path: name, size: content.byteLength, source: null, content });
  };
  add(weightsDir, CONFIG_FILE);
  if (existsSync(join(weightsDir, GENERATION_CONFIG_FILE))) add(weightsDir, GENERATION_CONFIG_FILE);
  add(location.dir, TOKENIZER_FILE);
  if (existsSync(join(location.dir, TOKENIZER_CONFIG_FILE))) add(location.dir, TOKENIZER_CONFIG_FILE);
  else generate(TOKENIZER_CONFIG_FILE, tokenizerConfig(tokenizerPath, config));
  if (existsSync(join(location.dir, SPECIAL_TOKENS_MAP_FILE))) add(location.dir, SPECIAL_TOKENS_MAP_FILE);
  const weights = weightFiles(weightsDir);
  if (weights.index) add(weightsDir, weights.index);
  const summaries = weights.files.map((f) => summarizeSafetensors(join(weightsDir, f)));
  for (const f of weights.files) add(weightsDir, f);
  const gguf = (options.gguf ?? []).map((g) => {
    if (!/^[\w.-]+\.gguf$/.test(g.path)) throw new Error(`GGUF file name ${JSON.stringify(g.path)} must be a plain file name ending in .gguf`);
    const size = statSync(g.source).size;
    files.push({ path: g.path, size, source: g.source, content: null });
    return { path: g.path, dtype: g.dtype, bytes: size };
  });

  const card = modelCard(
    {
      repo: options.repo,
      ...(options.revision && options.revision !== 'main' ? { revision: options.revision } : {}),
      config,
      sourceConfig,
      weights: {
        parameters: summaries.reduce((a, s) => a + s.parameters, 0),
        dtypes: [...new Set(summaries.flatMap((s) => s.dtypes))].sort(),
        files: weights.files.length,
        bytes: weights.files.reduce((a, f) => a + statSync(join(weightsDir, f)).size, 0),
      },
      training: readTrainingHistory(location),
      pruning: pruneFacts(location.dir, sourceConfig),
      analysis: options.report ? analysisEntryFor(options.report, location.dir) : null,
      ...(gguf.length > 0 ? { gguf } : {}),
    },
    options.card,
  );
  generate(CARD_FILE, card);
  return { location, files, card };
}

/** The token publish will use (see PublishOptions.token); throws a HubError saying where to put one when there is none. */
export function publishToken(repo: string, option?: string | ResolvedToken, env: Record<string, string | undefined> = process.env): ResolvedToken {
  const token = resolveToken(option, env);
  if (token === null) throw new HubError(`publishing to ${repo} needs a token with write access: ${tokenHelp(env)}`, 'unauthorized', null);
  return token;
}

const publicFiles = (plan: PublishPlan): PublishFile[] => plan.files.map(({ path, size, source }) => ({ path, size, source }));

/** Writes the planned upload into `dir` (absent or empty), complete or not at all. */
async function writeDryRun(plan: PublishPlan, dir: string): Promise<void> {
  const target = resolve(dir);
  if (existsSync(target) && readdirSync(target).length > 0) throw new Error(`${target} already holds files; a dry run writes into an empty or new folder`);
  await writeDirDurable(target, (tmp) => {
    for (const f of plan.files) {
      if (f.content) writeFileChunks(join(tmp, f.path), f.content);
      else copyFileSync(f.source!, join(tmp, f.path));
    }
  });
}

/** Files an earlier upload left that would shadow this one's weights (a loader reads an index before model.safetensors). */
function isWeightFile(path: string): boolean {
  return !path.includes('/') && (path.endsWith('.safetensors') || path === WEIGHTS_INDEX_FILE);
}

/**
 * Publishes a checkpoint (or a run folder's newest checkpoint) to a Hub model repository:
 * creates the repository if needed, uploads config, weights (through the large-file path),
 * tokenizer and a generated model card in one commit, and deletes weight files of an earlier
 * upload that this one does not replace. With `dryRun`, writes the same files to a folder.
 */
export async function publish(path: string, options: PublishOptions): Promise<PublishResult> {
  const plan = planPublish(path, options);
  const revision = options.revision ?? 'main';
  if (options.dryRun !== undefined) {
    await writeDryRun(plan, options.dryRun);
    return { repo: options.repo, revision, files: publicFiles(plan), checkpoint: plan.location.dir, commit: null, created: false, deleted: [], url: resolve(options.dryRun) };
  }
  const env = options.env ?? process.env;
  const hubUrl = hubUrlFrom(options.hubUrl, env);
  const token = publishToken(options.repo, options.token, env);
  const retries = options.retry?.retries ?? 4;
  const fetchFn = withRetries(withUploadProgress(options.fetch ?? fetch), options.retry, options.onRetry);
  const repo = { type: 'model' as const, name: options.repo };
  const common = { hubUrl, accessToken: token.value, fetch: fetchFn };
  const ctx: ErrorContext = { action: '', repo: options.repo, ...(options.revision ? { revision } : {}), hubUrl, token, access: 'write', retries };
  const step = async <T>(action: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw explainHubError(error, { ...ctx, action });
    }
  };
  const progress = options.onProgress ?? (() => {});

  progress({ kind: 'phase', phase: 'checking' });
  const existed = await step(`checking ${options.repo}`, () => repoExists({ repo, ...common }));
  let created = false;
  if (!existed) {
    created = await step(`creating ${options.repo}`, async () => {
      try {
        await createRepo({ repo, ...common, visibility: options.private ? 'private' : 'public' });
        return true;
      } catch (error) {
        // 409: it exists after all (created meanwhile, or private and invisible to repoExists).
        if (error instanceof HubApiError && error.statusCode === 409) return false;
        throw error;
      }
    });
  }
  if (revision !== 'main') {
    await step(`creating branch ${revision}`, async () => {
      try {
        await createBranch({ repo, ...common, branch: revision });
      } catch (error) {
        if (!(error instanceof HubApiError && error.statusCode === 409)) throw error; // 409: the branch exists
      }
    });
  }
  const uploading = new Set(plan.files.map((f) => f.path));
  const deleted: string[] = [];
  if (!created) {
    await step(`listing the files of ${options.repo}@${revision}`, async () => {
      for await (const entry of listFiles({ repo, revision, ...common })) {
        if (entry.type === 'file' && isWeightFile(entry.path) && !uploading.has(entry.path)) deleted.push(entry.path);
      }
    });
  }

  const operations: CommitOperation[] = [
    ...(await Promise.all(
      plan.files.map(async (f) => ({ operation: 'addOrUpdate' as const, path: f.path, content: f.content ? new Blob([f.content]) : await openAsBlob(f.source!) })),
    )),
    ...deleted.map((p) => ({ operation: 'delete' as const, path: p })),
  ];
  const sizes = new Map(plan.files.map((f) => [f.path, f.size]));
  const output = await step(`uploading to ${options.repo}@${revision}`, async () => {
    const iterator = commitIter({
      repo,
      ...common,
      operations,
      title: options.commitMessage ?? `Upload ${plan.location.dir.split(/[\\/]/).slice(-1)[0]} with deepen`,
      branch: revision,
      // The Hub's default for new repositories is Xet storage, which uploads through a separate
      // content-addressed service (chunking in WebAssembly, its own tokens and formats). The
      // plain Git LFS path (batch API, then a PUT or multipart PUTs to storage) is accepted for
      // every repository, needs nothing beyond HTTP, and is what the loopback test server
      // implements, so it is the path that has been tested.
      useXet: false,
    });
    for (let next = await iterator.next(); ; next = await iterator.next()) {
      if (next.done) return next.value;
      const event = next.value;
      if (event.event === 'phase') {
        progress({ kind: 'phase', phase: event.phase === 'preuploading' ? 'hashing' : event.phase === 'uploadingLargeFiles' ? 'uploading' : 'committing' });
      } else if (event.state !== 'error') {
        progress({ kind: 'file', path: event.path, size: sizes.get(event.path) ?? 0, state: event.state, fraction: event.progress });
      }
    }
  });
  if (!output) throw new HubError(`uploading to ${options.repo}: the Hub returned no commit`, 'failed', null);
  const page = `${hubUrl}/${options.repo}${revision === 'main' ? '' : `/tree/${encodeURIComponent(revision)}`}`;
  return { repo: options.repo, revision, files: publicFiles(plan), checkpoint: plan.location.dir, commit: output.commit, created, deleted, url: page };
}
