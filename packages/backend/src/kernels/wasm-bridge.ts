import { findBackend, getKernel, getKernelsForBackend, registerKernel } from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import type { CpuBackend, WasmBackend } from './backend-types.js';

/** Kernels that cannot cross between engines as plain numeric buffers. */
const NOT_BRIDGEABLE = new Set(['Complex', 'ComplexAbs', 'FFT', 'IFFT', 'Real', 'Imag', 'Draw', 'StaticRegexReplace']);

/**
 * Wraps a cpu kernel so the wasm engine can run it: copy the inputs out of the wasm heap,
 * run tfjs's own cpu implementation, copy the outputs back. Slow compared with a native
 * wasm kernel, but it means a model never dies on "kernel X not registered for wasm"; the
 * hot kernels (like UnsortedSegmentSum) get real implementations instead.
 */
function bridgeToCpu(cpuKernel: KernelConfig): KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const wasm = backend as WasmBackend;
    const cpu = findBackend('cpu') as CpuBackend | null;
    if (!cpu) throw new Error(`${cpuKernel.kernelName}: the cpu backend is not available to run it for wasm`);
    // Most kernels take named inputs; a few (Einsum, Concat, AddN) take an array: keep its shape.
    const cpuInputs: Record<string, TensorInfo> | TensorInfo[] = Array.isArray(inputs) ? [] : {};
    const staged: object[] = [];
    try {
      for (const [name, info] of Object.entries(inputs)) {
        if (!info) continue;
        if (info.dtype === 'complex64' || info.dtype === 'string') {
          throw new Error(`${cpuKernel.kernelName}: wasm has no kernel for ${info.dtype} input '${name}'`);
        }
        const dataId = cpu.write(wasm.readSync(info.dataId), info.shape, info.dtype);
        staged.push(dataId);
        (cpuInputs as Record<string, TensorInfo>)[name] = { dataId, shape: info.shape, dtype: info.dtype };
      }
      const result = cpuKernel.kernelFunc({ inputs: cpuInputs as Record<string, TensorInfo>, attrs: attrs ?? {}, backend: cpu });
      const outputs = Array.isArray(result) ? result : [result];
      const copied = outputs.map((out) => {
        const values = cpu.readSync(out.dataId);
        const onWasm = wasm.makeOutput(out.shape, out.dtype, undefined, values);
        cpu.disposeData(out.dataId);
        return onWasm;
      });
      return Array.isArray(result) ? copied : (copied[0] as TensorInfo);
    } finally {
      for (const dataId of staged) cpu.disposeData(dataId);
    }
  };
}

/**
 * Registers a cpu-bridged wasm kernel for every kernel the cpu engine has and wasm lacks.
 * Returns the names bridged by this call (empty when already done).
 */
export function bridgeMissingWasmKernels(): string[] {
  const bridged: string[] = [];
  for (const kernel of getKernelsForBackend('cpu')) {
    if (NOT_BRIDGEABLE.has(kernel.kernelName) || getKernel(kernel.kernelName, 'wasm')) continue;
    registerKernel({ kernelName: kernel.kernelName, backendName: 'wasm', kernelFunc: bridgeToCpu(kernel) });
    bridged.push(kernel.kernelName);
  }
  return bridged.sort();
}
