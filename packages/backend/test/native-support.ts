import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { initBackend } from '../src/init.js';
import { loadBinding } from '../src/native/binding.js';

/**
 * Test helpers shared by the native engine's test files (not part of the package's API).
 *
 * The native suites are skipped only where the machine cannot build the addon by design (no
 * compiler or OpenBLAS, or DEEPEN_NATIVE=0); a failed or missing build makes them run and fail.
 */
export const nativeLoad = loadBinding();
export const skipNative = !nativeLoad.ok && nativeLoad.expected;
export const skipReason = nativeLoad.ok ? '' : nativeLoad.reason;

/** Starts both engines once, so tests can switch between them with setBackend. */
export async function startNativeAndCpu(): Promise<void> {
  await initBackend({ engine: 'cpu' });
  await initBackend({ engine: 'native' });
}

/** Runs `work` on the native engine and on the pure-JS cpu engine, returning both results. */
export async function onBoth<T>(work: () => T): Promise<{ native: T; cpu: T }> {
  await tf.setBackend('deepen-native');
  const native = work();
  await tf.setBackend('cpu');
  const cpu = work();
  await tf.setBackend('deepen-native');
  return { native, cpu };
}

/**
 * Elementwise closeness: |a - b| <= atol + rtol * |b|, NaN only where NaN, infinities equal.
 * Reports the first mismatch with its index.
 */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, rtol = 1e-5, atol = 1e-6): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const b = expected[i] as number;
    if (Number.isNaN(b) || Number.isNaN(a)) {
      expect(Number.isNaN(a), `${label}[${i}]: got ${a}, expected ${b}`).toBe(Number.isNaN(b));
      continue;
    }
    if (!Number.isFinite(b) || !Number.isFinite(a)) {
      expect(a, `${label}[${i}]`).toBe(b);
      continue;
    }
    if (Math.abs(a - b) > atol + rtol * Math.abs(b)) expect.fail(`${label}[${i}]: got ${a}, expected ${b} (|diff| ${Math.abs(a - b)})`);
  }
}
