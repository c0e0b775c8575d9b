import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

// Why not @deepen/backend's writeDirAtomic: that package brings TensorFlow.js with it, and the
// hub depends on nothing tensor-related. The cache also needs different rules: a snapshot is
// never replaced (it is named by its commit), and losing a race to another process is fine.

/** A hidden sibling of `path` to build into; removed if anything fails. */
export function scratchSibling(path: string): string {
  const dir = join(dirname(path), `.${basename(path)}.incomplete-${process.pid}-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Writes a file and flushes it to disk before returning. */
export function writeDurable(path: string, data: Uint8Array | string): void {
  const fd = openSync(path, 'w');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let offset = 0;
    while (offset < bytes.byteLength) offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function isEmptyDir(path: string): boolean {
  return readdirSync(path).length === 0;
}

/**
 * Builds a folder next to `target` and renames it into place once `fill` has written all of it,
 * so `target` is either absent or complete. Returns false, discarding the new folder, when
 * `target` appeared in the meantime (another process finished the same work first).
 * An existing non-empty `target` is never touched.
 */
export async function buildFolder(target: string, fill: (dir: string) => Promise<void> | void): Promise<boolean> {
  mkdirSync(dirname(target), { recursive: true });
  const scratch = scratchSibling(target);
  try {
    await fill(scratch);
    if (existsSync(target)) {
      if (!isEmptyDir(target)) {
        rmSync(scratch, { recursive: true, force: true });
        return false;
      }
      rmSync(target, { recursive: true });
    }
    renameSync(scratch, target);
    return true;
  } catch (error) {
    rmSync(scratch, { recursive: true, force: true });
    throw error;
  }
}

/** Replaces a small file atomically (temporary sibling, flush, rename). */
export function replaceFile(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    writeDurable(tmp, data);
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
}
