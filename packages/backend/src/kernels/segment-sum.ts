import { getKernel, registerKernel, unregisterKernel, util } from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { CpuBackend, NumericArray, WasmBackend } from './backend-types.js';

/**
 * UnsortedSegmentSum is the gradient of `gather`, so every embedding's backward pass runs
 * it with one segment per vocabulary entry. tfjs's cpu kernel loops over segments and runs a
 * full tensor op for each (O(vocab x tokens x hidden)); wasm has no kernel at all. This is
 * the direct scatter-add, O(tokens x hidden), written once and used on both engines.
 */
export function scatterAddSegments(
  x: NumericArray,
  segmentIds: NumericArray,
  numSegments: number,
  out: NumericArray,
): void {
  const rows = segmentIds.length;
  const inner = rows === 0 ? 0 : x.length / rows;
  out.fill(0);
  for (let row = 0; row < rows; row++) {
    const segment = segmentIds[row] as number;
    // As in TensorFlow, rows whose id is outside [0, numSegments) are dropped.
    if (segment < 0 || segment >= numSegments) continue;
    const src = row * inner;
    const dst = segment * inner;
    for (let j = 0; j < inner; j++) out[dst + j] = (out[dst + j] as number) + (x[src + j] as number);
  }
}

function outputShape(x: TensorInfo, segmentIds: TensorInfo, numSegments: number): number[] {
  const prefix = segmentIds.shape;
  const matches = prefix.length <= x.shape.length && prefix.every((d, i) => d === x.shape[i]);
  if (!matches) {
    throw new Error(
      `UnsortedSegmentSum: segmentIds shape [${prefix}] must be a prefix of x shape [${x.shape}]`,
    );
  }
  return [numSegments, ...x.shape.slice(prefix.length)];
}

function readArgs(inputs: { x?: TensorInfo; segmentIds?: TensorInfo }, attrs: NamedAttrMap | undefined) {
  const { x, segmentIds } = inputs;
  if (!x || !segmentIds) throw new Error('UnsortedSegmentSum needs inputs x and segmentIds');
  const numSegments = Number(attrs?.numSegments);
  if (!Number.isInteger(numSegments) || numSegments < 0) {
    throw new Error(`UnsortedSegmentSum: numSegments must be a non-negative integer, got ${attrs?.numSegments}`);
  }
  return { x, segmentIds, numSegments, shape: outputShape(x, segmentIds, numSegments) };
}

const cpuSegmentSum: KernelFunc = ({ inputs, attrs, backend }) => {
  const cpu = backend as CpuBackend;
  const { x, segmentIds, numSegments, shape } = readArgs(inputs, attrs);
  const values = cpu.readSync(x.dataId);
  const out = util.getTypedArrayFromDType(x.dtype as 'float32', util.sizeFromShape(shape)) as NumericArray;
  scatterAddSegments(values, cpu.readSync(segmentIds.dataId), numSegments, out);
  return cpu.makeTensorInfo(shape, x.dtype, out);
};

const wasmSegmentSum: KernelFunc = ({ inputs, attrs, backend }) => {
  const wasm = backend as WasmBackend;
  const { x, segmentIds, numSegments, shape } = readArgs(inputs, attrs);
  const result = wasm.makeOutput(shape, x.dtype);
  // Views are taken after the allocation: growing the heap detaches earlier views.
  scatterAddSegments(
    wasm.typedArrayFromHeap(x),
    wasm.typedArrayFromHeap(segmentIds),
    numSegments,
    wasm.typedArrayFromHeap(result),
  );
  return result;
};

const KERNELS: Record<string, KernelFunc> = { cpu: cpuSegmentSum, wasm: wasmSegmentSum };

/** The kernel tfjs itself registered for a backend before deepen replaced it, if any. */
const originals = new Map<string, KernelConfig>();

/** Installs the fast UnsortedSegmentSum on `backendName` ('cpu' or 'wasm'); idempotent. */
export function registerSegmentSum(backendName: 'cpu' | 'wasm'): void {
  const existing = getKernel('UnsortedSegmentSum', backendName);
  const kernelFunc = KERNELS[backendName] as KernelFunc;
  if (existing?.kernelFunc === kernelFunc) return;
  if (existing) {
    originals.set(backendName, existing);
    // registerKernel would warn about a duplicate; replacing is deliberate.
    unregisterKernel('UnsortedSegmentSum', backendName);
  }
  registerKernel({ kernelName: 'UnsortedSegmentSum', backendName, kernelFunc });
}

/** tfjs's own kernel that deepen replaced (for benchmarks and tests against the original). */
export function originalKernel(kernelName: string, backendName: string): KernelConfig | undefined {
  return kernelName === 'UnsortedSegmentSum' ? originals.get(backendName) : undefined;
}
