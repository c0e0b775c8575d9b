import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fsyncPath } from '@deepen/core';

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Uploaded files, stored once per content under their SHA-256
 * (`<dir>/sha256/ab/abcdef...`). Ids and names from requests never reach a path here.
 */
export class BlobStore {
  constructor(readonly dir: string) {
    // Uploads interrupted by a crash leave partial files behind; they are never referenced.
    rmSync(this.incomingDir, { recursive: true, force: true });
    mkdirSync(this.incomingDir, { recursive: true });
  }

  private get incomingDir(): string {
    return join(this.dir, 'incoming');
  }

  /** Where an upload in progress is written. */
  tempPath(): string {
    return join(this.incomingDir, randomBytes(12).toString('hex'));
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a SHA-256 digest: '${sha256}'`);
    return join(this.dir, 'sha256', sha256.slice(0, 2), sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.pathOf(sha256));
  }

  /** Moves a completed upload into place, durably; content already stored is kept as is. */
  adopt(tempPath: string, sha256: string): void {
    const target = this.pathOf(sha256);
    if (existsSync(target)) {
      rmSync(tempPath, { force: true });
      return;
    }
    fsyncPath(tempPath);
    mkdirSync(dirname(target), { recursive: true });
    renameSync(tempPath, target);
    fsyncPath(dirname(target));
  }

  remove(sha256: string): void {
    rmSync(this.pathOf(sha256), { force: true });
  }
}
