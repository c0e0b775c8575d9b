import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatHubRef, hubUrlFrom, parseHubRef, resolveToken, tokenFilePath, validateRepoId } from '../src/index.js';

describe('resolveToken', () => {
  const dir = mkdtempSync(join(tmpdir(), 'deepen-token-'));
  const write = (path: string, token: string) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, `${token}\n`);
    return path;
  };

  it('looks where huggingface_hub looks, in its order', () => {
    const xdg = join(dir, 'xdg');
    const home = join(dir, 'hf-home');
    const explicit = write(join(dir, 'explicit', 'token'), 'hf_from_token_path');
    write(join(xdg, 'huggingface', 'token'), 'hf_from_xdg');
    write(join(home, 'token'), 'hf_from_hf_home');
    expect(resolveToken('hf_option', { HF_TOKEN: 'hf_env', HF_TOKEN_PATH: explicit })).toEqual({ value: 'hf_option', source: 'the token option' });
    expect(resolveToken(undefined, { HF_TOKEN: 'hf_env', HF_TOKEN_PATH: explicit })).toEqual({ value: 'hf_env', source: '$HF_TOKEN' });
    expect(resolveToken(undefined, { HF_TOKEN_PATH: explicit, HF_HOME: home })).toEqual({ value: 'hf_from_token_path', source: explicit });
    expect(resolveToken(undefined, { HF_HOME: home, XDG_CACHE_HOME: xdg })).toEqual({ value: 'hf_from_hf_home', source: join(home, 'token') });
    expect(resolveToken(undefined, { XDG_CACHE_HOME: xdg })).toEqual({ value: 'hf_from_xdg', source: join(xdg, 'huggingface', 'token') });
    expect(resolveToken(undefined, { HF_HOME: join(dir, 'empty') })).toBeNull();
    expect(tokenFilePath({})).toBe(join(homedir(), '.cache', 'huggingface', 'token'));
    expect(resolveToken({ value: 'hf_flag', source: '--token' }, {})).toEqual({ value: 'hf_flag', source: '--token' });
  });

  it('refuses what cannot be a token without repeating it', () => {
    const file = write(join(dir, 'bad', 'token'), 'ghp_not_a_hugging_face_token');
    expect(() => resolveToken(undefined, { HF_TOKEN_PATH: file })).toThrow(`the token from ${file} is not a Hugging Face access token (those start with hf_)`);
    for (const bad of ['sk-secret-123', 'hf_with space']) {
      let message = '';
      try {
        resolveToken(undefined, { HF_TOKEN: bad });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toBe('the token from $HF_TOKEN is not a Hugging Face access token (those start with hf_)');
    }
    expect(() => resolveToken('  ', {})).toThrow('the token from the token option is empty');
  });
});

describe('repository ids and hf: references', () => {
  it('parses hf:owner/name[@revision] and says what is wrong with a bad one', () => {
    expect(parseHubRef('hf:alice/tiny-lns')).toEqual({ repo: 'alice/tiny-lns' });
    expect(parseHubRef('hf:alice/tiny.lns_2@v1.0')).toEqual({ repo: 'alice/tiny.lns_2', revision: 'v1.0' });
    expect(formatHubRef({ repo: 'alice/m', revision: 'refs/pr/1' })).toBe('hf:alice/m@refs/pr/1');
    expect(() => parseHubRef('hf:alice/m@')).toThrow("'hf:alice/m@': nothing after '@'");
    expect(() => parseHubRef('hf:alice')).toThrow("'hf:alice': 'alice' is not a repository id: expected owner/name");
    expect(() => parseHubRef('alice/m')).toThrow("'alice/m' is not a Hub reference");
    for (const bad of ['a/b/c', 'alice/-m', 'alice/m.', 'al--ice/m', 'alice/m..x', 'alice/m.git', `alice/${'x'.repeat(97)}`, 'alice/m n']) {
      expect(() => validateRepoId(bad), bad).toThrow(/is not a (valid )?repository id/);
    }
  });

  it('takes the Hub from the option, else HF_ENDPOINT, else huggingface.co', () => {
    expect(hubUrlFrom(undefined, {})).toBe('https://huggingface.co');
    expect(hubUrlFrom(undefined, { HF_ENDPOINT: 'http://127.0.0.1:8080/' })).toBe('http://127.0.0.1:8080');
    expect(hubUrlFrom('https://hub.example/', { HF_ENDPOINT: 'http://other' })).toBe('https://hub.example');
    expect(() => hubUrlFrom('ftp://x', {})).toThrow("hub URL 'ftp://x' must be http(s)");
    expect(() => hubUrlFrom('not a url', {})).toThrow("hub URL 'not a url' is not a URL");
  });
});
