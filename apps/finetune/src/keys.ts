import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fsyncPath, writeFileSynced } from '@deepen/core';
import { resolveToken, type ResolvedToken } from '@deepen/hub';

/** One configured API key; `hubToken` is its tenant's Hugging Face token, if the operator gave one. */
export interface KeyEntry {
  tenant: string;
  key: string;
  hubToken?: ResolvedToken;
}

/** Bearer API keys and the tenant each one acts for. Keys are kept only as SHA-256 digests. */
export class ApiKeys {
  private readonly byDigest = new Map<string, string>();

  constructor(entries: Array<{ tenant: string; key: string }>) {
    for (const { tenant, key } of entries) this.byDigest.set(digest(key), tenant);
  }

  /** The tenant of a presented key, or null. */
  tenantOf(key: string): string | null {
    return this.byDigest.get(digest(key)) ?? null;
  }

  get tenants(): string[] {
    return [...new Set(this.byDigest.values())].sort();
  }
}

const digest = (key: string) => createHash('sha256').update(key).digest('hex');

/**
 * Each tenant's Hugging Face token, for publishing its fine-tuned models. Held in memory only:
 * never written to the database, events, logs or responses, and looked up by the tenant of
 * the job being published, so a tenant's upload can only ever carry its own token.
 */
export class HubTokens {
  private readonly byTenant = new Map<string, ResolvedToken>();

  constructor(entries: KeyEntry[]) {
    for (const { tenant, hubToken } of entries) {
      if (hubToken === undefined) continue;
      const known = this.byTenant.get(tenant);
      if (known !== undefined && known.value !== hubToken.value) {
        throw new Error(`tenant '${tenant}' has two different Hugging Face tokens (${known.source} and ${hubToken.source}); give it one`);
      }
      this.byTenant.set(tenant, hubToken);
    }
  }

  tokenOf(tenant: string): ResolvedToken | null {
    return this.byTenant.get(tenant) ?? null;
  }

  get tenants(): string[] {
    return [...this.byTenant.keys()].sort();
  }
}

export const TENANT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MIN_KEY_LENGTH = 16;

/** Checks key entries; `where(i)` names entry i in messages (a file position or the variable). */
function checked(entries: Array<{ tenant: unknown; key: unknown }>, where: (i: number) => string): Array<{ tenant: string; key: string }> {
  const seen = new Set<string>();
  return entries.map(({ tenant, key }, i) => {
    if (typeof tenant !== 'string' || !TENANT_PATTERN.test(tenant)) {
      throw new Error(`${where(i)}: tenant must be 1-64 letters, digits, '_', '.' or '-' (starting with a letter or digit), got ${JSON.stringify(tenant)}`);
    }
    if (typeof key !== 'string' || key.length < MIN_KEY_LENGTH || /\s/.test(key)) {
      throw new Error(`${where(i)}: key must be a string of at least ${MIN_KEY_LENGTH} characters without spaces`);
    }
    if (seen.has(key)) throw new Error(`${where(i)}: the same key is listed twice`);
    seen.add(key);
    return { tenant, key };
  });
}

const KEY_FIELDS = new Set(['tenant', 'key', 'hf_token', 'hf_token_file']);

/** Whether users other than the owner may read the file (it holds a secret). */
const sharedWithOthers = (path: string) => (statSync(path).mode & 0o077) !== 0;

/**
 * The Hugging Face token of keys file entry `i`: `hf_token` inline, or `hf_token_file` (a path,
 * relative to the keys file's folder) holding it. Messages name the entry, never the token.
 */
function hubTokenOf(entry: Record<string, unknown>, where: string, keysPath: string, warn: (line: string) => void): ResolvedToken | undefined {
  const inline = entry.hf_token;
  const file = entry.hf_token_file;
  if (inline !== undefined && file !== undefined) throw new Error(`${where}: give hf_token or hf_token_file, not both`);
  if (inline !== undefined) {
    if (typeof inline !== 'string') throw new Error(`${where}: hf_token must be a string`);
    if (sharedWithOthers(keysPath)) warn(`${keysPath} holds Hugging Face tokens and other users may read it; chmod 600 it`);
    return resolveToken({ value: inline, source: `${where}.hf_token` }) ?? undefined;
  }
  if (file === undefined) return undefined;
  if (typeof file !== 'string' || file === '') throw new Error(`${where}: hf_token_file must be a path`);
  const path = resolve(dirname(keysPath), file);
  if (!existsSync(path)) throw new Error(`${where}.hf_token_file: ${path} not found`);
  if (sharedWithOthers(path)) warn(`${path} holds a Hugging Face token and other users may read it; chmod 600 it`);
  return resolveToken({ value: readFileSync(path, 'utf8'), source: `${where}.hf_token_file (${path})` }) ?? undefined;
}

/**
 * Reads a keys file: `{ "keys": [{ "tenant": "team-a", "key": "sk-...", "hf_token_file": "..." }, ...] }`.
 * `hf_token` / `hf_token_file` are optional: the tenant's Hugging Face token for publishing.
 */
export function readKeysFile(path: string, warn: (line: string) => void = () => {}): KeyEntry[] {
  if (!existsSync(path)) throw new Error(`${path}: keys file not found`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${(error as Error).message})`);
  }
  const keys = (json as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${path}: expected {"keys": [{"tenant": ..., "key": ...}, ...]} with at least one key`);
  const extra = Object.keys(json as object).find((k) => k !== 'keys');
  if (extra !== undefined) throw new Error(`${path}: unknown field '${extra}'`);
  keys.forEach((k, i) => {
    const unknown = typeof k === 'object' && k !== null ? Object.keys(k).find((f) => !KEY_FIELDS.has(f)) : undefined;
    if (unknown !== undefined) throw new Error(`${path}: keys[${i}]: unknown field '${unknown}'`);
  });
  return checked(keys as Array<{ tenant: unknown; key: unknown }>, (i) => `${path}: keys[${i}]`).map((entry, i) => {
    const hubToken = hubTokenOf(keys[i] as Record<string, unknown>, `${path}: keys[${i}]`, path, warn);
    return hubToken ? { ...entry, hubToken } : entry;
  });
}

/** Parses `tenant:key,tenant:key` (the FINETUNE_API_KEYS variable). */
export function parseKeysVariable(value: string, name: string): Array<{ tenant: string; key: string }> {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new Error(`${name} is set but lists no keys (expected tenant:key,tenant:key)`);
  return checked(
    items.map((item) => {
      const at = item.indexOf(':');
      return at < 0 ? { tenant: item, key: undefined } : { tenant: item.slice(0, at), key: item.slice(at + 1) };
    }),
    (i) => `${name} entry ${i + 1}`,
  );
}

/** Writes a keys file with one fresh key for tenant `default` (readable by the owner only). */
export function createKeysFile(path: string): { tenant: string; key: string } {
  const entry = { tenant: 'default', key: `sk-ft-${randomBytes(24).toString('base64url')}` };
  mkdirSync(dirname(path), { recursive: true });
  // Created exclusively and private from the start: the file holds a secret.
  writeFileSynced(path, `${JSON.stringify({ keys: [entry] }, null, 2)}\n`, { mode: 0o600, exclusive: true });
  fsyncPath(dirname(path));
  return entry;
}
