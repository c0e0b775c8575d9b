import { findBackend } from '@tensorflow/tfjs';
import type { EngineName } from '../engines.js';
import type { CpuBackend } from './backend-types.js';
import { registerSegmentSum } from './segment-sum.js';
import { bridgeMissingWasmKernels } from './wasm-bridge.js';
import { registerNativeBackend } from '../native/backend.js';

export { scatterAddSegments, originalKernel } from './segment-sum.js';

/** What `prepareEngine` changed, for the report. */
export interface PreparedKernels {
  /** Kernels replaced or added with deepen's own implementation. */
  replaced: string[];
  /** Kernels the engine lacked that now run through the cpu engine. */
  bridged: string[];
}

const bridgedSoFar: string[] = [];

/** Makes an engine ready for training: the kernels backprop needs, fast where it matters. */
export function prepareEngine(engine: EngineName): PreparedKernels {
  if (engine === 'cpu' || engine === 'wasm') {
    // tfjs prints a "use tfjs-node" banner on the cpu backend's first write; deepen's own
    // engine report already says which engine runs and why.
    const cpu = findBackend('cpu') as CpuBackend | null;
    if (cpu) cpu.firstUse = false;
    registerSegmentSum(engine);
  }
  if (engine === 'wasm') {
    bridgedSoFar.push(...bridgeMissingWasmKernels());
    return { replaced: ['UnsortedSegmentSum'], bridged: [...bridgedSoFar].sort() };
  }
  if (engine === 'cpu') return { replaced: ['UnsortedSegmentSum'], bridged: [] };
  if (engine === 'native') return { replaced: registerNativeBackend().nativeKernels, bridged: [] };
  return { replaced: [], bridged: [] };
}
