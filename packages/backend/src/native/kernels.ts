import { backend_util, getKernel, slice_util, util } from '@tensorflow/tfjs';
import type { DataType, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { BINARY, COMPARE, REDUCE, UNARY, type NativeBinding, type TypedArray } from './binding.js';
import { fusedKernels } from './fused-kernels.js';
import { cpuKernel, floats, valuesOf, type Inputs } from './storage.js';


const isFloat = (t: TensorInfo | undefined): boolean => t === undefined || t.dtype === 'float32';
/** Element types the layout kernels move as raw 4- or 1-byte values. */
const isPlain = (t: TensorInfo): boolean => t.dtype === 'float32' || t.dtype === 'int32' || t.dtype === 'bool';

function newArray(dtype: DataType, size: number): TypedArray {
  return util.getTypedArrayFromDType(dtype as 'float32', size) as TypedArray;
}

/** Strides of `shape` aligned to the right of `outShape`, 0 along broadcast dimensions. */
function alignedStrides(shape: number[], outShape: number[]): Int32Array {
  const strides = new Int32Array(outShape.length);
  let stride = 1;
  for (let i = shape.length - 1, j = outShape.length - 1; i >= 0; i--, j--) {
    strides[j] = shape[i] === 1 ? 0 : stride;
    stride *= shape[i] as number;
  }
  return strides;
}

/**
 * Offsets of each batch matrix of `shape` ([...batch, rows, cols]) for every entry of the
 * broadcast batch shape `outBatch`: broadcasting costs an index table, never a copy.
 */
function batchOffsets(shape: number[], outBatch: number[]): Int32Array {
  const matrix = (shape[shape.length - 2] as number) * (shape[shape.length - 1] as number);
  const strides = alignedStrides(shape.slice(0, -2), outBatch);
  const total = util.sizeFromShape(outBatch);
  const offsets = new Int32Array(total);
  for (let flat = 0; flat < total; flat++) {
    let rest = flat;
    let offset = 0;
    for (let j = outBatch.length - 1; j >= 0; j--) {
      const dim = outBatch[j] as number;
      offset += (rest % dim) * (strides[j] as number);
      rest = Math.floor(rest / dim);
    }
    offsets[flat] = offset * matrix;
  }
  return offsets;
}

/** Reduced axes made adjacent: the [outer, reduce, inner] view, or null when they are not. */
function reductionView(shape: number[], axes: number[]): { outer: number; reduce: number; inner: number } | null {
  const sorted = [...axes].sort((a, b) => a - b);
  const first = sorted[0] as number;
  const last = sorted[sorted.length - 1] as number;
  if (last - first !== sorted.length - 1) return null;
  return {
    outer: util.sizeFromShape(shape.slice(0, first)),
    reduce: util.sizeFromShape(shape.slice(first, last + 1)),
    inner: util.sizeFromShape(shape.slice(last + 1)),
  };
}

/** _FusedMatMul's activations, as the kernels that compute them. */
const ACTIVATION_KERNELS: Record<string, string> = {
  linear: 'Identity',
  relu: 'Relu',
  relu6: 'Relu6',
  elu: 'Elu',
  prelu: 'Prelu',
  leakyrelu: 'LeakyRelu',
  sigmoid: 'Sigmoid',
};

/** The native kernels by TensorFlow.js kernel name. */
export function nativeKernels(binding: NativeBinding): Record<string, KernelFunc> {
  /** Runs another kernel of this engine (native where there is one) inside a kernel. */
  const run = (name: string, inputs: Inputs, backend: MathBackendCPU, attrs: NamedAttrMap = {}) =>
    (getKernel(name, 'deepen-native') ?? getKernel(name, 'cpu'))!.kernelFunc({ inputs: inputs as Record<string, TensorInfo>, backend, attrs }) as TensorInfo;

  function matMul(backend: MathBackendCPU, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): TensorInfo {
    const ra = a.shape.length;
    const rb = b.shape.length;
    const M = (transposeA ? a.shape[ra - 1] : a.shape[ra - 2]) as number;
    const K = (transposeA ? a.shape[ra - 2] : a.shape[ra - 1]) as number;
    const Kb = (transposeB ? b.shape[rb - 1] : b.shape[rb - 2]) as number;
    const N = (transposeB ? b.shape[rb - 2] : b.shape[rb - 1]) as number;
    if (K !== Kb) {
      throw new Error(
        `Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
      );
    }
    const outBatch = backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const out = new Float32Array(util.sizeFromShape(outBatch) * M * N);
    binding.batchedGemm(floats(backend, a), floats(backend, b), out, M, N, K, transposeA, transposeB, batchOffsets(a.shape, outBatch), batchOffsets(b.shape, outBatch));
    return backend.makeTensorInfo([...outBatch, M, N], 'float32', out);
  }

  function unary(kernelName: keyof typeof UNARY): KernelFunc {
    const op = UNARY[kernelName];
    const fallback = cpuKernel(kernelName);
    return (args) => {
      const { x } = args.inputs as Inputs;
      if (x!.dtype !== 'float32') return fallback(args);
      const backend = args.backend as MathBackendCPU;
      const out = new Float32Array(util.sizeFromShape(x!.shape));
      binding.unary(op, floats(backend, x!), out);
      return backend.makeTensorInfo(x!.shape, 'float32', out);
    };
  }

  function binary(kernelName: keyof typeof BINARY | keyof typeof COMPARE): KernelFunc {
    const compare = kernelName in COMPARE;
    const op = compare ? COMPARE[kernelName as keyof typeof COMPARE] : BINARY[kernelName as keyof typeof BINARY];
    const fallback = cpuKernel(kernelName);
    return (args) => {
      const { a, b } = args.inputs as Inputs;
      if (a!.dtype !== 'float32' || b!.dtype !== 'float32') return fallback(args);
      const backend = args.backend as MathBackendCPU;
      const shape = backend_util.assertAndGetBroadcastShape(a!.shape, b!.shape);
      const dtype: DataType = compare ? 'bool' : 'float32';
      const out = newArray(dtype, util.sizeFromShape(shape));
      const call = compare ? binding.compare : binding.binary;
      (call as (...x: unknown[]) => void)(op, floats(backend, a!), floats(backend, b!), out, Int32Array.from(shape), alignedStrides(a!.shape, shape), alignedStrides(b!.shape, shape));
      return backend.makeTensorInfo(shape, dtype, out);
    };
  }

  function reduction(kernelName: keyof typeof REDUCE): KernelFunc {
    const op = REDUCE[kernelName];
    const fallback = cpuKernel(kernelName);
    return (args) => {
      const { x } = args.inputs as Inputs;
      // Max names its axes `reductionIndices`; the other reductions call them `axis`.
      const { axis, reductionIndices, keepDims } = args.attrs as unknown as { axis?: number | number[]; reductionIndices?: number | number[]; keepDims: boolean };
      const axes = util.parseAxisParam((axis ?? reductionIndices)!, x!.shape);
      if (x!.dtype !== 'float32' || axes.length === 0) return fallback(args);
      const backend = args.backend as MathBackendCPU;
      const [reducedShape] = backend_util.computeOutAndReduceShapes(x!.shape, axes);
      const outShape = keepDims ? backend_util.expandShapeToKeepDim(reducedShape, axes) : reducedShape;
      const out = new Float32Array(util.sizeFromShape(reducedShape));
      const view = reductionView(x!.shape, axes);
      if (view) {
        binding.reduce(op, floats(backend, x!), out, view.outer, view.reduce, view.inner);
      } else {
        // Axes apart: move them innermost first (one copy), then reduce rows.
        const perm = backend_util.getAxesPermutation(axes, x!.shape.length)!;
        const moved = run('Transpose', { x }, backend, { perm });
        binding.reduce(op, floats(backend, moved), out, out.length, util.sizeFromShape(x!.shape) / Math.max(out.length, 1), 1);
        backend.disposeIntermediateTensorInfo(moved);
      }
      return backend.makeTensorInfo(outShape, 'float32', out);
    };
  }

  function argReduction(kernelName: 'ArgMax' | 'ArgMin'): KernelFunc {
    const fallback = cpuKernel(kernelName);
    return (args) => {
      const { x } = args.inputs as Inputs;
      const { axis } = args.attrs as unknown as { axis: number | number[] };
      const [$axis] = util.parseAxisParam(axis, x!.shape) as [number];
      if (x!.dtype !== 'float32' || x!.shape[$axis] === 0) return fallback(args);
      const backend = args.backend as MathBackendCPU;
      const outShape = x!.shape.filter((_, i) => i !== $axis);
      const out = new Int32Array(util.sizeFromShape(outShape));
      const view = reductionView(x!.shape, [$axis])!;
      binding.argReduce(floats(backend, x!), out, view.outer, view.reduce, view.inner, kernelName === 'ArgMax');
      return backend.makeTensorInfo(outShape, 'int32', out);
    };
  }

  const kernels: Record<string, KernelFunc> = {
    ArgMax: argReduction('ArgMax'),
    ArgMin: argReduction('ArgMin'),
    Cast: (args) => {
      const { x } = args.inputs as Inputs;
      const { dtype } = args.attrs as unknown as { dtype: DataType };
      // Widening casts get storage of their own type, so float32 tensors are Float32Arrays.
      if (dtype !== 'float32' || (x!.dtype !== 'int32' && x!.dtype !== 'bool')) return cpuKernel('Cast')(args);
      const backend = args.backend as MathBackendCPU;
      return backend.makeTensorInfo(x!.shape, 'float32', Float32Array.from(backend.data.get(x!.dataId).values as TypedArray));
    },
    BatchMatMul: (args) => {
      const { a, b } = args.inputs as Inputs;
      if (!isFloat(a) || !isFloat(b)) return cpuKernel('BatchMatMul')(args);
      const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
      return matMul(args.backend as MathBackendCPU, a!, b!, transposeA, transposeB);
    },
    _FusedMatMul: (args) => {
      const { a, b, bias, preluActivationWeights } = args.inputs as Inputs;
      if (![a, b, bias, preluActivationWeights].every(isFloat)) return cpuKernel('_FusedMatMul')(args);
      const backend = args.backend as MathBackendCPU;
      const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as {
        transposeA: boolean;
        transposeB: boolean;
        activation?: string;
        leakyreluAlpha?: number;
      };
      let current = matMul(backend, a!, b!, transposeA, transposeB);
      const then = (kernel: string, inputs: Inputs, attrs: NamedAttrMap = {}) => {
        const next = run(kernel, inputs, backend, attrs);
        backend.disposeIntermediateTensorInfo(current);
        current = next;
      };
      if (bias) then('Add', { a: current, b: bias });
      if (activation) {
        const kernel = ACTIVATION_KERNELS[activation];
        if (!kernel) throw new Error(`Activation ${activation} has not been implemented for the native backend.`);
        if (activation === 'prelu') then(kernel, { x: current, alpha: preluActivationWeights });
        else then(kernel, { x: current }, activation === 'leakyrelu' ? { alpha: leakyreluAlpha ?? 0.2 } : {});
      }
      return current;
    },
    AddN: (args) => {
      const inputs = Object.values(args.inputs as Inputs) as TensorInfo[];
      if (inputs.length === 0 || !inputs.every((t) => t.dtype === 'float32' && util.arraysEqual(t.shape, inputs[0]!.shape))) return cpuKernel('AddN')(args);
      const backend = args.backend as MathBackendCPU;
      const shape = inputs[0]!.shape;
      const out = Float32Array.from(floats(backend, inputs[0]!));
      const strides = alignedStrides(shape, shape);
      for (const t of inputs.slice(1)) binding.binary(BINARY.Add, out, floats(backend, t), out, Int32Array.from(shape), strides, strides);
      return backend.makeTensorInfo(shape, 'float32', out);
    },
    Select: (args) => {
      const { condition, t, e } = args.inputs as Inputs;
      if (t!.dtype !== 'float32' || e!.dtype !== 'float32' || !util.arraysEqual(condition!.shape, t!.shape) || !util.arraysEqual(t!.shape, e!.shape)) {
        return cpuKernel('Select')(args);
      }
      const backend = args.backend as MathBackendCPU;
      const out = new Float32Array(util.sizeFromShape(t!.shape));
      binding.select(valuesOf(backend, condition!) as Uint8Array, floats(backend, t!), floats(backend, e!), out);
      return backend.makeTensorInfo(t!.shape, 'float32', out);
    },
    Softmax: (args) => {
      const { logits } = args.inputs as Inputs;
      const { dim } = args.attrs as unknown as { dim: number };
      const rank = logits!.shape.length;
      if (logits!.dtype !== 'float32' || (dim !== -1 && dim !== rank - 1)) return cpuKernel('Softmax')(args);
      const backend = args.backend as MathBackendCPU;
      const cols = logits!.shape[rank - 1] as number;
      const out = new Float32Array(util.sizeFromShape(logits!.shape));
      binding.softmax(floats(backend, logits!), out, cols === 0 ? 0 : out.length / cols, cols, false);
      return backend.makeTensorInfo(logits!.shape, 'float32', out);
    },
    Transpose: (args) => {
      const { x } = args.inputs as Inputs;
      if (!isPlain(x!)) return cpuKernel('Transpose')(args);
      const { perm } = args.attrs as unknown as { perm: number[] };
      const backend = args.backend as MathBackendCPU;
      const outShape = Array.from(perm, (p) => x!.shape[p] as number);
      const out = newArray(x!.dtype, util.sizeFromShape(x!.shape));
      binding.transpose(valuesOf(backend, x!), out, Int32Array.from(x!.shape), Int32Array.from(perm));
      return backend.makeTensorInfo(outShape, x!.dtype, out);
    },
    Slice: (args) => {
      const { x } = args.inputs as Inputs;
      if (!isPlain(x!)) return cpuKernel('Slice')(args);
      const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
      const [$begin, $size] = slice_util.parseSliceParams(x as never, begin, size) as [number[], number[]];
      slice_util.assertParamsValid(x as never, $begin, $size);
      const backend = args.backend as MathBackendCPU;
      const out = newArray(x!.dtype, util.sizeFromShape($size));
      binding.slice(valuesOf(backend, x!), out, Int32Array.from(x!.shape), Int32Array.from($begin), Int32Array.from($size));
      return backend.makeTensorInfo($size, x!.dtype, out);
    },
    SplitV: (args) => {
      const { x } = args.inputs as Inputs;
      if (!isPlain(x!)) return cpuKernel('SplitV')(args);
      const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
      const $axis = util.parseAxisParam(axis, x!.shape)[0] as number;
      const splits = backend_util.prepareSplitSize(x as never, numOrSizeSplits, $axis);
      const backend = args.backend as MathBackendCPU;
      const values = valuesOf(backend, x!);
      const shape = Int32Array.from(x!.shape);
      const begin = new Int32Array(x!.shape.length);
      return splits.map((s) => {
        const size = Int32Array.from(x!.shape);
        size[$axis] = s;
        const out = newArray(x!.dtype, util.sizeFromShape([...size]));
        binding.slice(values, out, shape, begin, size);
        begin[$axis] = (begin[$axis] as number) + s;
        return backend.makeTensorInfo([...size], x!.dtype, out);
      });
    },
    Concat: (args) => {
      const inputs = (Object.values(args.inputs as Inputs) as TensorInfo[]).filter((t) => util.sizeFromShape(t.shape) > 0);
      const { axis } = args.attrs as unknown as { axis: number };
      if (inputs.length < 2 || !inputs.every((t) => isPlain(t) && t.dtype === inputs[0]!.dtype)) return cpuKernel('Concat')(args);
      const $axis = util.parseAxisParam(axis, inputs[0]!.shape)[0] as number;
      const outShape = backend_util.computeOutShape(inputs.map((t) => t.shape), $axis);
      const backend = args.backend as MathBackendCPU;
      const outer = util.sizeFromShape(outShape.slice(0, $axis));
      const widths = Int32Array.from(inputs.map((t) => util.sizeFromShape(t.shape.slice($axis))));
      const out = newArray(inputs[0]!.dtype, util.sizeFromShape(outShape));
      binding.concat(inputs.map((t) => valuesOf(backend, t)), out, outer, widths);
      return backend.makeTensorInfo(outShape, inputs[0]!.dtype, out);
    },
    GatherV2: (args) => {
      const { x, indices } = args.inputs as Inputs;
      const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
      if (!isPlain(x!) || indices!.dtype !== 'int32' || (batchDims ?? 0) !== 0) return cpuKernel('GatherV2')(args);
      const $axis = util.parseAxisParam(axis, x!.shape)[0] as number;
      const backend = args.backend as MathBackendCPU;
      const outShape = [...x!.shape.slice(0, $axis), ...indices!.shape, ...x!.shape.slice($axis + 1)];
      const out = newArray(x!.dtype, util.sizeFromShape(outShape));
      binding.gather(
        valuesOf(backend, x!),
        valuesOf(backend, indices!) as Int32Array,
        out,
        util.sizeFromShape(x!.shape.slice(0, $axis)),
        x!.shape[$axis] as number,
        util.sizeFromShape(x!.shape.slice($axis + 1)),
      );
      return backend.makeTensorInfo(outShape, x!.dtype, out);
    },
    UnsortedSegmentSum: (args) => {
      const { x, segmentIds } = args.inputs as Inputs;
      const { numSegments } = args.attrs as unknown as { numSegments: number };
      if (x!.dtype !== 'float32' || segmentIds!.dtype !== 'int32') return cpuKernel('UnsortedSegmentSum')(args);
      const prefix = segmentIds!.shape;
      if (!(prefix.length <= x!.shape.length && prefix.every((d, i) => d === x!.shape[i]))) {
        throw new Error(`UnsortedSegmentSum: segmentIds shape [${prefix}] must be a prefix of x shape [${x!.shape}]`);
      }
      const backend = args.backend as MathBackendCPU;
      const outShape = [numSegments, ...x!.shape.slice(prefix.length)];
      const out = new Float32Array(util.sizeFromShape(outShape));
      binding.segmentSum(floats(backend, x!), valuesOf(backend, segmentIds!) as Int32Array, out, numSegments);
      return backend.makeTensorInfo(outShape, 'float32', out);
    },
  };
  Object.assign(kernels, fusedKernels(binding));
  for (const name of Object.keys(UNARY) as Array<keyof typeof UNARY>) kernels[name] = unary(name);
  for (const name of [...Object.keys(BINARY), ...Object.keys(COMPARE)] as Array<keyof typeof BINARY>) kernels[name] = binary(name);
  for (const name of Object.keys(REDUCE) as Array<keyof typeof REDUCE>) kernels[name] = reduction(name);
  return kernels;
}

