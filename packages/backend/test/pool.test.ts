/**
 * The native engine's thread pool under the ways it gets used: many small kernels back to
 * back (a decode step), more threads than cores (workers arriving late, the caller doing
 * their blocks), and the thread count changing between kernels (workers started and stopped
 * while others spin). Every result must equal the one-thread result exactly, and nothing may
 * hang.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '@deepen/core';
import { nativeLoad, skipNative, skipReason } from './native-support.js';

const rng = Rng.fromSeed(99);
const normals = (n: number) => rng.fillNormal(new Float32Array(n));
/** Bit-for-bit equality of two float arrays (vitest's toEqual walks 300,000 elements one by one: seconds per call). */
const sameBits = (a: Float32Array, b: Float32Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

describe.skipIf(skipNative)(`the native thread pool${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('gives one-thread results while the thread count changes between kernels, up to more threads than cores', () => {
    if (!nativeLoad.ok) return;
    const native = nativeLoad.binding;
    const before = native.blasInfo().threads;
    const [K, N] = [700, 400];
    const x = normals(K);
    const w = normals(K * N);
    const big = normals(300_000);
    try {
      native.setThreads(1);
      const product = new Float32Array(N);
      native.linear(x, w, null, product, 1, K, N, false);
      const exp = new Float32Array(big.length);
      native.unary(0, big, exp);
      const y = new Float32Array(N);
      const e = new Float32Array(big.length);
      for (let i = 0; i < 400; i++) {
        if (i % 7 === 0) native.setThreads(1 + ((i / 7) % 5));
        native.linear(x, w, null, y, 1, K, N, false);
        expect(sameBits(y, product), `linear at step ${i}`).toBe(true);
        if (i % 10 === 0) {
          native.unary(0, big, e);
          expect(sameBits(e, exp), `unary at step ${i}`).toBe(true);
        }
      }
    } finally {
      native.setThreads(before);
    }
  });
});
