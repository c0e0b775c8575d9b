/** The prefix that marks a checkpoint argument as a Hub repository: `hf:owner/name[@revision]`. */
export const HF_PREFIX = 'hf:';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

/** A model repository on the Hub. */
export interface RepoRef {
  /** `owner/name`. */
  repo: string;
  /** Branch, tag or commit; undefined means the default branch. */
  revision?: string;
}

// The Hub's own rules (huggingface_hub's validate_repo_id): word characters, '-' and '.',
// at most 96 per part, no '--' or '..', not starting or ending with '-' or '.'.
const PART = /^(?![-.])[\w.-]{1,96}(?<![-.])$/;

/** Throws unless `repo` is a valid `owner/name` model repository id; the message names what is wrong. */
export function validateRepoId(repo: string): string {
  const parts = repo.split('/');
  if (parts.length !== 2) throw new Error(`'${repo}' is not a repository id: expected owner/name`);
  for (const part of parts) {
    if (!PART.test(part) || part.includes('--') || part.includes('..')) {
      throw new Error(`'${repo}' is not a valid repository id: '${part}' must be 1-96 letters, digits, '_', '-' or '.', not start or end with '-' or '.', and not contain '--' or '..'`);
    }
  }
  if (repo.endsWith('.git')) throw new Error(`'${repo}' is not a valid repository id: it must not end with .git`);
  return repo;
}

/** Whether a command-line checkpoint argument names a Hub repository. */
export function isHubRef(arg: string): boolean {
  return arg.startsWith(HF_PREFIX);
}

/** Parses `hf:owner/name[@revision]`. */
export function parseHubRef(arg: string): RepoRef {
  if (!isHubRef(arg)) throw new Error(`'${arg}' is not a Hub reference: expected ${HF_PREFIX}owner/name[@revision]`);
  const body = arg.slice(HF_PREFIX.length);
  const at = body.indexOf('@');
  const repo = at < 0 ? body : body.slice(0, at);
  const revision = at < 0 ? undefined : body.slice(at + 1);
  if (revision === '') throw new Error(`'${arg}': nothing after '@'; expected ${HF_PREFIX}owner/name@revision`);
  try {
    validateRepoId(repo);
  } catch (error) {
    throw new Error(`'${arg}': ${(error as Error).message}`);
  }
  return revision === undefined ? { repo } : { repo, revision };
}

/** `hf:owner/name` or `hf:owner/name@revision`, the inverse of parseHubRef. */
export function formatHubRef(ref: RepoRef): string {
  return `${HF_PREFIX}${ref.repo}${ref.revision === undefined ? '' : `@${ref.revision}`}`;
}

/** The Hub to talk to: the option, else $HF_ENDPOINT (as Hugging Face's own tools read it), else huggingface.co. */
export function hubUrlFrom(option: string | undefined, env: Record<string, string | undefined> = process.env): string {
  const url = option ?? (env.HF_ENDPOINT || DEFAULT_HUB_URL);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`hub URL '${url}' is not a URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error(`hub URL '${url}' must be http(s)`);
  return url.replace(/\/+$/, '');
}
