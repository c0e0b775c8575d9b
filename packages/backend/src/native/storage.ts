import { getKernel } from '@tensorflow/tfjs';
import type { KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { TypedArray } from './binding.js';

/** A kernel's named inputs. */
export type Inputs = Record<string, TensorInfo | undefined>;

/**
 * The typed array behind a tensor, of the type its dtype implies: the native kernels work on it
 * in place. The cpu engine's Cast shares storage when no precision is lost, so a float32
 * tensor may sit on an Int32Array or Uint8Array; such a tensor is converted here (a copy, never
 * written back, since its storage belongs to the original tensor too). The native Cast
 * (kernels.ts) makes that rare.
 */
export function valuesOf(backend: MathBackendCPU, info: TensorInfo): TypedArray {
  const values = backend.data.get(info.dataId).values as TypedArray;
  if (info.dtype === 'float32' && !(values instanceof Float32Array)) return Float32Array.from(values);
  if (info.dtype === 'int32' && !(values instanceof Int32Array)) return Int32Array.from(values);
  return values;
}

export function floats(backend: MathBackendCPU, info: TensorInfo): Float32Array {
  return valuesOf(backend, info) as Float32Array;
}

/** The cpu engine's own kernel, for inputs a native kernel does not handle (other dtypes). */
export function cpuKernel(kernelName: string): KernelFunc {
  const kernel = getKernel(kernelName, 'cpu');
  if (!kernel) throw new Error(`the cpu engine has no ${kernelName} kernel to fall back on`);
  return kernel.kernelFunc;
}

