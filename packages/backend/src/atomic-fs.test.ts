import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeDirAtomic, writeFileAtomic } from './atomic-fs.js';

describe('atomic writes', () => {
  it('writes and replaces a file, leaving no temporary files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deepen-atomic-'));
    const file = join(dir, 'sub', 'a.json');
    writeFileAtomic(file, '{"v":1}');
    writeFileAtomic(file, [Buffer.from('{"v":'), Buffer.from('2}')]);
    expect(readFileSync(file, 'utf8')).toBe('{"v":2}');
    expect(readdirSync(join(dir, 'sub'))).toEqual(['a.json']);
  });

  it('replaces a directory only once the new one is complete', async () => {
    const root = mkdtempSync(join(tmpdir(), 'deepen-atomic-'));
    const target = join(root, 'ckpt');
    await writeDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'model.bin'), 'old'));
    await expect(
      writeDirAtomic(target, (tmp) => {
        writeFileSync(join(tmp, 'model.bin'), 'half');
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(readFileSync(join(target, 'model.bin'), 'utf8')).toBe('old');
    expect(readdirSync(root)).toEqual(['ckpt']);
    await writeDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'model.bin'), 'new'));
    expect(readFileSync(join(target, 'model.bin'), 'utf8')).toBe('new');
    expect(readdirSync(root)).toEqual(['ckpt']);
  });
});
