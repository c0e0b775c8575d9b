import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiKeys, createKeysFile, parseKeysVariable, readKeysFile } from './keys.js';

const dir = () => mkdtempSync(join(tmpdir(), 'deepen-keys-'));

describe('API keys', () => {
  it('maps each key to its tenant and nothing else', () => {
    const keys = new ApiKeys(parseKeysVariable('acme:sk-acme-0123456789abcdef, globex:sk-globex-0123456789abc', 'FINETUNE_API_KEYS'));
    expect(keys.tenantOf('sk-acme-0123456789abcdef')).toBe('acme');
    expect(keys.tenantOf('sk-globex-0123456789abc')).toBe('globex');
    expect(keys.tenantOf('sk-acme-0123456789abcdeF')).toBeNull();
    expect(keys.tenants).toEqual(['acme', 'globex']);
  });

  it('names the bad entry of a keys file or variable', () => {
    const path = join(dir(), 'keys.json');
    const cases: Array<[unknown, RegExp]> = [
      [{ keys: [] }, /expected \{"keys": \[\{"tenant": \.\.\., "key": \.\.\.\}, \.\.\.\]\} with at least one key/],
      [{ keys: [{ tenant: 'a', key: 'short' }] }, /keys\[0\]: key must be a string of at least 16 characters/],
      [{ keys: [{ tenant: '../x', key: 'sk-0123456789abcdef' }] }, /keys\[0\]: tenant must be 1-64 letters/],
      [{ keys: [{ tenant: 'a', key: 'sk-0123456789abcdef', role: 'admin' }] }, /keys\[0\]: unknown field 'role'/],
      [{ keys: [{ tenant: 'a', key: 'sk-0123456789abcdef' }, { tenant: 'b', key: 'sk-0123456789abcdef' }] }, /keys\[1\]: the same key is listed twice/],
      [{ keys: [{ tenant: 'a', key: 'sk-0123456789abcdef' }], extra: 1 }, /unknown field 'extra'/],
    ];
    for (const [json, message] of cases) {
      writeFileSync(path, JSON.stringify(json));
      expect(() => readKeysFile(path)).toThrow(message);
    }
    writeFileSync(path, '{"keys": [');
    expect(() => readKeysFile(path)).toThrow(/keys\.json: not valid JSON/);
    expect(() => readKeysFile(join(dir(), 'none.json'))).toThrow(/none\.json: keys file not found/);
    expect(() => parseKeysVariable('acme', 'FINETUNE_API_KEYS')).toThrow(/FINETUNE_API_KEYS entry 1: key must be/);
    expect(() => parseKeysVariable(' , ', 'FINETUNE_API_KEYS')).toThrow(/lists no keys/);
  });

  it('creates a private keys file with one fresh key, and never overwrites one', () => {
    const path = join(dir(), 'sub', 'api-keys.json');
    const created = createKeysFile(path);
    expect(created.tenant).toBe('default');
    expect(readKeysFile(path)).toEqual([created]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(() => createKeysFile(path)).toThrow(/EEXIST/);
  });
});
