import { chmodSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiKeys, createKeysFile, HubTokens, parseKeysVariable, readKeysFile } from './keys.js';

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

  it("reads each tenant's Hugging Face token from the keys file, naming the entry (never the token) when one is wrong", () => {
    const folder = dir();
    const path = join(folder, 'keys.json');
    writeFileSync(join(folder, 'acme.token'), 'hf_acme_secret_0123\n', { mode: 0o600 });
    const write = (keys: unknown[]) => writeFileSync(path, JSON.stringify({ keys }), { mode: 0o600 });
    const warnings: string[] = [];
    write([
      { tenant: 'acme', key: 'sk-acme-0123456789abcdef', hf_token_file: 'acme.token' },
      { tenant: 'acme', key: 'sk-acme-second-0123456789' },
      { tenant: 'globex', key: 'sk-globex-0123456789abc' },
    ]);
    const tokens = new HubTokens(readKeysFile(path, (w) => warnings.push(w)));
    expect(tokens.tokenOf('acme')).toEqual({ value: 'hf_acme_secret_0123', source: `${path}: keys[0].hf_token_file (${join(folder, 'acme.token')})` });
    expect(tokens.tokenOf('globex')).toBeNull();
    expect(tokens.tenants).toEqual(['acme']);
    expect(warnings).toEqual([]);

    const cases: Array<[unknown[], RegExp]> = [
      [[{ tenant: 'a', key: 'sk-0123456789abcdef', hf_token: 'hf_x', hf_token_file: 'acme.token' }], /keys\[0\]: give hf_token or hf_token_file, not both/],
      [[{ tenant: 'a', key: 'sk-0123456789abcdef', hf_token_file: 'missing.token' }], /keys\[0\]\.hf_token_file: .*missing\.token not found/],
      [[{ tenant: 'a', key: 'sk-0123456789abcdef', hf_token: 'ghp_not_a_hub_token' }], /the token from .*keys\[0\]\.hf_token is not a Hugging Face access token/],
      [[{ tenant: 'a', key: 'sk-0123456789abcdef', hf_token: 42 }], /keys\[0\]: hf_token must be a string/],
    ];
    for (const [keys, message] of cases) {
      write(keys);
      expect(() => readKeysFile(path)).toThrow(message);
      expect(() => readKeysFile(path)).not.toThrow(/ghp_not_a_hub_token/);
    }
    write([
      { tenant: 'a', key: 'sk-0123456789abcdef', hf_token: 'hf_one_0123456789' },
      { tenant: 'a', key: 'sk-0123456789abcdeg', hf_token: 'hf_two_0123456789' },
    ]);
    expect(() => new HubTokens(readKeysFile(path))).toThrow(/tenant 'a' has two different Hugging Face tokens \(.*keys\[0\]\.hf_token and .*keys\[1\]\.hf_token\)/);
    expect(() => new HubTokens(readKeysFile(path))).not.toThrow(/hf_one|hf_two/);
    // A secret others can read is worth a warning.
    chmodSync(path, 0o644);
    readKeysFile(path, (w) => warnings.push(w));
    expect(warnings).toEqual([`${path} holds Hugging Face tokens and other users may read it; chmod 600 it`, `${path} holds Hugging Face tokens and other users may read it; chmod 600 it`]);
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
