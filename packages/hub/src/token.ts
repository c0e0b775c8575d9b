import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** An access token and where it came from. `source` is safe to print; `value` never is. */
export interface ResolvedToken {
  value: string;
  /** e.g. "--token", "$HF_TOKEN", "/home/me/.cache/huggingface/token". */
  source: string;
}

type Env = Record<string, string | undefined>;

/** The Hugging Face token file, as huggingface_hub finds it: $HF_TOKEN_PATH, else $HF_HOME/token, else ~/.cache/huggingface/token. */
export function tokenFilePath(env: Env = process.env): string {
  if (env.HF_TOKEN_PATH) return env.HF_TOKEN_PATH;
  const hfHome = env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
  return join(hfHome, 'token');
}

/**
 * Finds the access token in the order Hugging Face's tools use: the explicit option, then
 * $HF_TOKEN, then the token file `huggingface-cli login` writes. Returns null when there is
 * none. A token that cannot be one (it must start with hf_) is refused by source, never echoed.
 */
export function resolveToken(option?: string | ResolvedToken, env: Env = process.env): ResolvedToken | null {
  let found: ResolvedToken | null = null;
  if (typeof option === 'object') found = { value: option.value.trim(), source: option.source };
  else if (option !== undefined) found = { value: option.trim(), source: 'the token option' };
  else if (env.HF_TOKEN) found = { value: env.HF_TOKEN.trim(), source: '$HF_TOKEN' };
  else {
    const path = tokenFilePath(env);
    if (existsSync(path)) found = { value: readFileSync(path, 'utf8').trim(), source: path };
  }
  if (found === null) return null;
  if (found.value === '') throw new Error(`the token from ${found.source} is empty`);
  if (!/^hf_\S+$/.test(found.value)) throw new Error(`the token from ${found.source} is not a Hugging Face access token (those start with hf_)`);
  return found;
}

/** Where resolveToken looks, for an error message when none was found. */
export function tokenHelp(env: Env = process.env): string {
  return `pass --token, set HF_TOKEN, or log in with \`huggingface-cli login\` (token file ${tokenFilePath(env)})`;
}

/** Replaces every occurrence of the token in a message (a server may echo headers back). */
export function redact(text: string, token: string | null | undefined): string {
  return token ? text.split(token).join('hf_***') : text;
}
