import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Durable, atomic writes. A reader (or a process started after a crash or power loss) sees
 * either the old complete file or folder under its final name, or the new complete one, never
 * a mix or a torn file:
 *
 * - a file is written to a temporary sibling, fsynced, renamed over the target, and its folder
 *   fsynced (so the rename itself survives a power loss);
 * - a folder is built aside under a hidden temporary name, every file in it fsynced, then
 *   renamed into place. Replacing an existing folder takes two renames, so first a small
 *   journal (`.<name>.swap`, itself durable) records which complete folder is the new one;
 *   `currentDir` follows it for the instant between the renames, and the next write of the
 *   same folder (or `repairDir`) finishes the swap.
 *
 * Temporary names start with a dot and carry the writer's pid, so listings skip them and a
 * later writer removes those whose process is gone.
 */

const TEMP_MARK = /^\.(.+)\.(incomplete|replaced|deleted|tmp)-(\d+)-[0-9a-f]{8}$/;

function tempSibling(path: string, kind: 'incomplete' | 'replaced' | 'deleted' | 'tmp'): string {
  return join(dirname(path), `.${basename(path)}.${kind}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function journalOf(dir: string): string {
  return join(dirname(dir), `.${basename(dir)}.swap`);
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** fsyncs a file or folder by path. */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } catch (error) {
    // Some file systems refuse fsync on a directory (EINVAL); a regular file must sync.
    const code = (error as NodeJS.ErrnoException).code;
    if (!(code === 'EINVAL' || code === 'EISDIR') || !lstatSync(path).isDirectory()) throw error;
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, data: string | Uint8Array | readonly Uint8Array[]): void {
  const chunks = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  for (const chunk of chunks) {
    let offset = 0;
    while (offset < chunk.byteLength) offset += writeSync(fd, chunk, offset, chunk.byteLength - offset);
  }
}

export type FileData = string | Uint8Array | readonly Uint8Array[];

function writeChunks(path: string, data: FileData, options: { mode?: number; exclusive?: boolean; sync: boolean }): void {
  const fd = openSync(path, options.exclusive ? 'wx' : 'w', options.mode ?? 0o666);
  try {
    writeAll(fd, data);
    if (options.sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a file from a string, bytes or chunks (never concatenated into one copy), without
 * fsync: for files inside a folder that `writeDirDurable` is building, which fsyncs every file
 * before it publishes the folder.
 */
export function writeFileChunks(path: string, data: FileData): void {
  writeChunks(path, data, { sync: false });
}

/** Writes a file and fsyncs it before returning, without a rename: for a file created once. */
export function writeFileSynced(path: string, data: FileData, options: { mode?: number; exclusive?: boolean } = {}): void {
  writeChunks(path, data, { ...options, sync: true });
}

/**
 * Replaces a file atomically and durably: temporary sibling, fsync, rename, fsync of the
 * folder. Readers see the old contents or the new, never a mix; if anything fails the old
 * file is untouched and the temporary is removed.
 */
export function writeFileDurable(path: string, data: FileData, options: { mode?: number } = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempSibling(path, 'tmp');
  try {
    writeFileSynced(tmp, data, options);
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  fsyncPath(dirname(path));
}

/**
 * `writeFileDurable` for a file too large to hold in memory: `produce` writes it chunk by
 * chunk into the temporary sibling. If `produce` throws, the temporary is removed and whatever
 * was at `path` stays as it was.
 */
export async function writeFileDurableStream(path: string, produce: (write: (chunk: Uint8Array) => void) => void | Promise<void>, options: { mode?: number } = {}): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempSibling(path, 'tmp');
  try {
    const fd = openSync(tmp, 'w', options.mode ?? 0o666);
    try {
      await produce((chunk) => writeAll(fd, chunk));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  fsyncPath(dirname(path));
}

/** `writeFileDurable` of a JSON value, pretty-printed with a final newline. */
export function writeJsonDurable(path: string, value: unknown): void {
  writeFileDurable(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** fsyncs every file and folder under `dir`, the deepest first, then `dir` itself. */
export function fsyncTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) fsyncTree(path);
    else if (entry.isFile()) fsyncPath(path);
  }
  fsyncPath(dir);
}

interface SwapJournal {
  /** The complete new folder (a sibling's name) that replaces the target. */
  incoming: string;
  /** Where the old folder is moved aside. */
  outgoing: string;
  pid: number;
}

function readJournal(dir: string): SwapJournal | null {
  const path = journalOf(dir);
  if (!existsSync(path)) return null;
  try {
    const journal = JSON.parse(readFileSync(path, 'utf8')) as SwapJournal;
    if (typeof journal.incoming === 'string' && typeof journal.outgoing === 'string') return journal;
  } catch {
    // A journal is written durably before it matters; a torn one means the swap never began.
  }
  return null;
}

/**
 * The complete folder that currently stands for `dir`: `dir` itself, or, in the instant of a
 * replacement between its two renames, the new folder its journal names. Readers call this
 * instead of opening `dir` directly; it never changes anything on disk.
 */
export function currentDir(dir: string): string {
  if (existsSync(dir)) return dir;
  const journal = readJournal(dir);
  if (journal) {
    for (const name of [journal.incoming, journal.outgoing]) {
      const candidate = join(dirname(dir), name);
      if (existsSync(candidate)) return candidate;
    }
  }
  return dir;
}

/**
 * Finishes a replacement of `dir` that a dead process left between its two renames (rolling
 * forward to the new folder, which was complete before the journal was written), and removes
 * the temporaries of dead writers of `dir`. A live writer's files are left alone.
 */
export function repairDir(dir: string): void {
  const parent = dirname(dir);
  if (!existsSync(parent)) return;
  const journal = readJournal(dir);
  if (journal && !processAlive(journal.pid)) {
    const incoming = join(parent, journal.incoming);
    const outgoing = join(parent, journal.outgoing);
    if (existsSync(incoming)) {
      if (existsSync(dir)) renameSync(dir, outgoing);
      renameSync(incoming, dir);
    } else if (!existsSync(dir) && existsSync(outgoing)) {
      renameSync(outgoing, dir);
    }
    fsyncPath(parent);
    rmSync(outgoing, { recursive: true, force: true });
    unlinkSync(journalOf(dir));
    fsyncPath(parent);
  }
  const name = basename(dir);
  for (const entry of readdirSync(parent)) {
    const m = TEMP_MARK.exec(entry);
    // The temporaries of `dir` itself and of its swap journal's own durable write.
    if (m && (m[1] === name || m[1] === `.${name}.swap`) && !processAlive(Number(m[3]))) rmSync(join(parent, entry), { recursive: true, force: true });
  }
}

export interface WriteDirOptions {
  /**
   * What to do when `dir` already exists: 'replace' it (the default) or 'keep' it, discarding
   * the new folder (a cache whose entries are named by their contents: the first writer wins).
   */
  ifExists?: 'replace' | 'keep';
}

/**
 * Builds a folder aside (`fill` writes into the path it is given), fsyncs every file in it and
 * then publishes it under `dir`. At every instant `dir` is either the old complete folder or
 * the new complete one (see `currentDir` for the moment of a replacement). If `fill` throws,
 * `dir` is left exactly as it was. Returns false when `ifExists: 'keep'` kept an existing folder.
 */
export async function writeDirDurable(dir: string, fill: (tmpDir: string) => void | Promise<void>, options: WriteDirOptions = {}): Promise<boolean> {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  repairDir(dir);
  const incoming = tempSibling(dir, 'incomplete');
  mkdirSync(incoming);
  try {
    await fill(incoming);
    fsyncTree(incoming);
  } catch (error) {
    rmSync(incoming, { recursive: true, force: true });
    throw error;
  }
  if (!existsSync(dir)) {
    try {
      renameSync(incoming, dir);
      fsyncPath(parent);
      return true;
    } catch (error) {
      // Another writer published `dir` first; below, it is kept or replaced as asked.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') {
        rmSync(incoming, { recursive: true, force: true });
        throw error;
      }
    }
  }
  if (options.ifExists === 'keep' && readdirSync(dir).length > 0) {
    rmSync(incoming, { recursive: true, force: true });
    return false;
  }
  const outgoing = tempSibling(dir, 'replaced');
  const journal: SwapJournal = { incoming: basename(incoming), outgoing: basename(outgoing), pid: process.pid };
  writeFileDurable(journalOf(dir), JSON.stringify(journal));
  renameSync(dir, outgoing);
  renameSync(incoming, dir);
  fsyncPath(parent);
  rmSync(outgoing, { recursive: true, force: true });
  unlinkSync(journalOf(dir));
  fsyncPath(parent);
  return true;
}

/**
 * Removes a folder so that it never exists half-deleted under its name: it is renamed aside
 * first (one atomic step), then deleted.
 */
export function removeDirDurable(dir: string): void {
  if (!existsSync(dir)) return;
  const aside = tempSibling(dir, 'deleted');
  renameSync(dir, aside);
  fsyncPath(dirname(dir));
  rmSync(aside, { recursive: true, force: true });
}

/** Whether a file or folder name is one of this module's temporaries (or a swap journal). */
export function isTemporaryName(name: string): boolean {
  return TEMP_MARK.test(name) || /^\..+\.swap$/.test(name);
}
