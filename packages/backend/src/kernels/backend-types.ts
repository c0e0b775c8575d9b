import type { DataType, KernelBackend, TensorInfo } from '@tensorflow/tfjs';

/** The parts of TensorFlow.js's pure-JS cpu backend that deepen's kernels use. */
export interface CpuBackend extends KernelBackend {
  firstUse?: boolean;
  readSync(dataId: object): Float32Array | Int32Array | Uint8Array;
  write(values: Float32Array | Int32Array | Uint8Array, shape: number[], dtype: DataType): object;
  makeTensorInfo(shape: number[], dtype: DataType, values?: Float32Array | Int32Array | Uint8Array): TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** The parts of TensorFlow.js's wasm backend that deepen's kernels use. */
export interface WasmBackend extends KernelBackend {
  readSync(dataId: object): Float32Array | Int32Array | Uint8Array;
  makeOutput(shape: number[], dtype: DataType, memoryOffset?: number, values?: Float32Array | Int32Array | Uint8Array): TensorInfo;
  /** A view of the tensor's memory on the wasm heap: valid until the next heap allocation. */
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
}

export type NumericArray = Float32Array | Int32Array | Uint8Array;
