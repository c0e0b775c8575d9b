import { memory, tidy, type Tensor } from '@tensorflow/tfjs';

/** Live tensors in the current engine. */
export function liveTensorCount(): number {
  return memory().numTensors;
}

/** Tensors were created inside a block of work and never disposed. */
export class TensorLeakError extends Error {
  constructor(
    readonly label: string,
    readonly before: number,
    readonly after: number,
    readonly allowed: number,
  ) {
    super(
      `${label}: ${after - before - allowed} tensor(s) leaked (live tensors ${before} before, ${after} after` +
        `${allowed > 0 ? `, ${allowed} expected to remain` : ''})`,
    );
    this.name = 'TensorLeakError';
  }
}

export interface LeakCheckOptions {
  /** Tensors the block is expected to leave alive, e.g. the ones it returns. Default 0. */
  expectedNew?: number;
}

/**
 * Runs `work` (sync or async) and throws TensorLeakError if it leaves more live tensors than
 * `expectedNew`. The result is returned untouched; if the block throws, that error wins.
 */
export function assertNoLeaks<T>(label: string, work: () => Promise<T>, options?: LeakCheckOptions): Promise<T>;
export function assertNoLeaks<T>(label: string, work: () => T, options?: LeakCheckOptions): T;
export function assertNoLeaks<T>(label: string, work: () => T | Promise<T>, options: LeakCheckOptions = {}): T | Promise<T> {
  const allowed = options.expectedNew ?? 0;
  const before = liveTensorCount();
  const check = () => {
    const after = liveTensorCount();
    if (after !== before + allowed) throw new TensorLeakError(label, before, after, allowed);
  };
  const result = work();
  if (result instanceof Promise) {
    return result.then((value) => {
      check();
      return value;
    });
  }
  check();
  return result;
}

/**
 * Watches the live tensor count across the iterations of a loop: call `check()` after each
 * iteration; it throws once the count differs from the first check's. Training and
 * evaluation loops use it in tests to prove their memory stays flat.
 */
export class TensorCountWatch {
  private baseline: number | null = null;

  constructor(private readonly label: string) {}

  /** Records the count on the first call, then asserts it stays the same. */
  check(iteration?: number): void {
    const now = liveTensorCount();
    if (this.baseline === null) {
      this.baseline = now;
      return;
    }
    if (now !== this.baseline) {
      const where = iteration === undefined ? this.label : `${this.label}, iteration ${iteration}`;
      throw new TensorLeakError(where, this.baseline, now, 0);
    }
  }
}

/**
 * The values of a tensor computed inside a tidy scope, with every intermediate released.
 * Returning `t.dataSync()` from tf.tidy itself looks the same but makes tfjs walk the
 * returned array element by element in search of tensors: seconds for a vocabulary-sized
 * array. Here tidy returns the tensor and the data is read after.
 */
export function tidyValues(work: () => Tensor): Float32Array | Int32Array | Uint8Array {
  const result = tidy(work);
  try {
    return result.dataSync() as Float32Array | Int32Array | Uint8Array;
  } finally {
    result.dispose();
  }
}
