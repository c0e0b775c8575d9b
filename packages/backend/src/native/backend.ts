import { findBackendFactory, getKernel, getKernelsForBackend, registerBackend, registerKernel, unregisterKernel } from '@tensorflow/tfjs';
import type { KernelFunc } from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { registerFusedGradients } from '../fused/index.js';
import { EngineUnavailableError } from '../load-errors.js';
import { loadBinding, type NativeBinding } from './binding.js';
import { nativeKernels } from './kernels.js';

/** The name TensorFlow.js knows deepen's native CPU engine by. */
export const NATIVE_BACKEND = 'deepen-native';

/**
 * The pure-JS cpu backend with its hot kernels replaced by C++ (native/src). It stores tensors
 * exactly as the cpu backend does (typed arrays in JavaScript memory), so every cpu kernel
 * runs on it unchanged and the native kernels read and write those arrays in place.
 */
export class NativeBackend extends MathBackendCPU {
  constructor(readonly binding: NativeBinding) {
    super();
    // The cpu backend prints a "use tfjs-node" banner on first use; deepen reports engines itself.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }
}

export interface NativeRegistration {
  binding: NativeBinding;
  /** Kernels implemented in C++ (the rest are the cpu engine's, run on the same memory). */
  nativeKernels: string[];
}

let registered: NativeRegistration | null = null;
/** OpenBLAS's own choice of threads (one per core), before DEEPEN_THREADS changed it. */
let defaultThreads = 0;

/**
 * Registers the native backend and its kernels with TensorFlow.js (once) and applies
 * DEEPEN_THREADS (every time). Throws with the reason when the addon is not available; the
 * caller then moves on to the next engine.
 */
export function registerNativeBackend(): NativeRegistration {
  if (!registered || !findBackendFactory(NATIVE_BACKEND)) registered = register();
  const requested = process.env.DEEPEN_THREADS;
  const threads = requested === undefined || requested.trim() === '' ? defaultThreads : Number(requested);
  if (!Number.isInteger(threads) || threads < 1) throw new EngineUnavailableError(`DEEPEN_THREADS must be a positive integer, got '${requested}'`);
  registered.binding.setThreads(threads);
  return registered;
}

function register(): NativeRegistration {
  const load = loadBinding();
  if (!load.ok) throw new EngineUnavailableError(load.reason);
  const { binding } = load;
  defaultThreads ||= binding.blasInfo().threads;
  if (!findBackendFactory(NATIVE_BACKEND)) registerBackend(NATIVE_BACKEND, () => new NativeBackend(binding), 1);
  // Every cpu kernel first (the storage is the same), then the native ones on top.
  for (const kernel of getKernelsForBackend('cpu')) {
    if (!getKernel(kernel.kernelName, NATIVE_BACKEND)) registerKernel({ ...kernel, backendName: NATIVE_BACKEND });
  }
  const names: string[] = [];
  for (const [kernelName, kernelFunc] of Object.entries(nativeKernels(binding)) as Array<[string, KernelFunc]>) {
    if (getKernel(kernelName, NATIVE_BACKEND)) unregisterKernel(kernelName, NATIVE_BACKEND);
    registerKernel({ kernelName, backendName: NATIVE_BACKEND, kernelFunc });
    names.push(kernelName);
  }
  registerFusedGradients();
  return { binding, nativeKernels: names.sort() };
}

/** Whether the native engine can run here; when not, why, and whether that is by design. */
export type NativeEngineStatus = { available: true } | { available: false; reason: string; expected: boolean };

/**
 * The native engine's state without starting it. `expected: true` means this machine cannot
 * build it by design (no compiler or OpenBLAS, or DEEPEN_NATIVE=0); test suites skip their
 * native cases only then, so a broken build never passes as a skipped one.
 */
export function nativeEngineStatus(): NativeEngineStatus {
  const load = loadBinding();
  return load.ok ? { available: true } : { available: false, reason: load.reason, expected: load.expected };
}
