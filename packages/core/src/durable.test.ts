import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { currentDir, isTemporaryName, removeDirDurable, repairDir, writeDirDurable, writeFileDurable, writeJsonDurable } from './durable.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'deepen-durable-'));

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

describe('durable writes', () => {
  it('writes and replaces a file, leaving no temporary files', () => {
    const dir = scratch();
    const file = join(dir, 'sub', 'a.json');
    writeFileDurable(file, '{"v":1}');
    writeFileDurable(file, [Buffer.from('{"v":'), Buffer.from('2}')]);
    expect(readFileSync(file, 'utf8')).toBe('{"v":2}');
    writeJsonDurable(file, { v: 3 });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ v: 3 });
    expect(readdirSync(join(dir, 'sub'))).toEqual(['a.json']);
  });

  it('replaces a directory only once the new one is complete', async () => {
    const root = scratch();
    const target = join(root, 'ckpt');
    await writeDirDurable(target, (tmp) => writeFileSync(join(tmp, 'model.bin'), 'old'));
    await expect(
      writeDirDurable(target, (tmp) => {
        writeFileSync(join(tmp, 'model.bin'), 'half');
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(readFileSync(join(target, 'model.bin'), 'utf8')).toBe('old');
    expect(readdirSync(root)).toEqual(['ckpt']);
    await writeDirDurable(target, (tmp) => writeFileSync(join(tmp, 'model.bin'), 'new'));
    expect(readFileSync(join(target, 'model.bin'), 'utf8')).toBe('new');
    expect(readdirSync(root)).toEqual(['ckpt']);
  });

  it("keeps an existing folder with ifExists: 'keep' (the first writer of a cache entry wins)", async () => {
    const root = scratch();
    const target = join(root, 'snapshot');
    expect(await writeDirDurable(target, (tmp) => writeFileSync(join(tmp, 'f'), 'first'), { ifExists: 'keep' })).toBe(true);
    expect(await writeDirDurable(target, (tmp) => writeFileSync(join(tmp, 'f'), 'second'), { ifExists: 'keep' })).toBe(false);
    expect(readFileSync(join(target, 'f'), 'utf8')).toBe('first');
    expect(readdirSync(root)).toEqual(['snapshot']);
  });

  it('follows and then finishes a replacement that a dead process left between its two renames', async () => {
    const root = scratch();
    const target = join(root, 'step-1');
    // Stage exactly what writeDirDurable leaves after its journal and first rename.
    const pid = deadPid();
    const incoming = `.step-1.incomplete-${pid}-0123abcd`;
    const outgoing = `.step-1.replaced-${pid}-4567cdef`;
    mkdirSync(join(root, incoming));
    writeFileSync(join(root, incoming, 'model.bin'), 'new');
    mkdirSync(join(root, outgoing));
    writeFileSync(join(root, outgoing, 'model.bin'), 'old');
    writeFileSync(join(root, '.step-1.swap'), JSON.stringify({ incoming, outgoing, pid }));
    expect(existsSync(target)).toBe(false);
    expect(readFileSync(join(currentDir(target), 'model.bin'), 'utf8')).toBe('new');
    repairDir(target);
    expect(readdirSync(root)).toEqual(['step-1']);
    expect(readFileSync(join(target, 'model.bin'), 'utf8')).toBe('new');
  });

  it("leaves a live writer's temporaries alone and removes a dead writer's", () => {
    const root = scratch();
    const target = join(root, 'entry');
    mkdirSync(join(root, `.entry.incomplete-${process.pid}-00000000`));
    mkdirSync(join(root, `.entry.incomplete-${deadPid()}-11111111`));
    writeFileSync(join(root, `..entry.swap.tmp-${deadPid()}-22222222`), '{"incom'); // a journal cut while it was written
    repairDir(target);
    expect(readdirSync(root)).toEqual([`.entry.incomplete-${process.pid}-00000000`]);
    expect(isTemporaryName(`.entry.incomplete-${process.pid}-00000000`)).toBe(true);
    expect(isTemporaryName('step-0000001')).toBe(false);
  });

  it('removes a folder by renaming it aside first', () => {
    const root = scratch();
    const target = join(root, 'old');
    mkdirSync(target);
    writeFileSync(join(target, 'f'), 'x');
    removeDirDurable(target);
    expect(readdirSync(root)).toEqual([]);
    removeDirDurable(target); // already gone: nothing to do
  });

  it('never leaves the target half-replaced when the new folder cannot be moved in', async () => {
    const root = scratch();
    const target = join(root, 'ckpt');
    await writeDirDurable(target, (tmp) => writeFileSync(join(tmp, 'a'), 'old'));
    // A fill that renames its own scratch folder away makes the publishing rename fail.
    await expect(writeDirDurable(target, (tmp) => renameSync(tmp, join(root, 'elsewhere')))).rejects.toThrow();
    expect(readFileSync(join(currentDir(target), 'a'), 'utf8')).toBe('old');
  });
});
