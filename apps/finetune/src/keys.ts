import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

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

/** Reads a keys file: `{ "keys": [{ "tenant": "team-a", "key": "sk-..." }, ...] }`. */
export function readKeysFile(path: string): Array<{ tenant: string; key: string }> {
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
    const unknown = typeof k === 'object' && k !== null ? Object.keys(k).find((f) => f !== 'tenant' && f !== 'key') : undefined;
    if (unknown !== undefined) throw new Error(`${path}: keys[${i}]: unknown field '${unknown}'`);
  });
  return checked(keys as Array<{ tenant: unknown; key: unknown }>, (i) => `${path}: keys[${i}]`);
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
  writeFileSync(path, `${JSON.stringify({ keys: [entry] }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return entry;
}
