import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The functions of the compiled addon (native/src). Every array is read or written in place. */
export interface NativeBinding {
  abiVersion: number;
  blasInfo(): { config: string; core: string; threads: number; parallel: number };
  setThreads(threads: number): void;
  /** c[i] = op(a @ aOffsets[i]) x op(b @ bOffsets[i]) for each i; op(a) is [M, K], op(b) is [K, N]. */
  batchedGemm(a: Float32Array, b: Float32Array, c: Float32Array, M: number, N: number, K: number, transA: boolean, transB: boolean, aOffsets: Int32Array, bOffsets: Int32Array): void;
  /** The instruction set the elementwise kernels were compiled for and chosen at load: avx512, avx2 or baseline. */
  isa(): string;
  unary(op: number, x: Float32Array, y: Float32Array): void;
  /** y = a op b over `shape`, each operand's strides aligned to it (0 where broadcast). */
  binary(op: number, a: Float32Array, b: Float32Array, y: Float32Array, shape: Int32Array, aStrides: Int32Array, bStrides: Int32Array): void;
  compare(op: number, a: Float32Array, b: Float32Array, y: Uint8Array, shape: Int32Array, aStrides: Int32Array, bStrides: Int32Array): void;
  select(condition: Uint8Array, a: Float32Array, b: Float32Array, y: Float32Array): void;
  /** x viewed as [outer, reduce, inner] reduced over the middle axis into y [outer, inner]. */
  reduce(op: number, x: Float32Array, y: Float32Array, outer: number, reduce: number, inner: number): void;
  softmax(x: Float32Array, y: Float32Array, rows: number, cols: number, log: boolean): void;
  /** Index of the largest (max) or smallest value along the middle axis of [outer, reduce, inner]. */
  argReduce(x: Float32Array, y: Int32Array, outer: number, reduce: number, inner: number, max: boolean): void;
  transpose(x: TypedArray, y: TypedArray, shape: Int32Array, perm: Int32Array): void;
  slice(x: TypedArray, y: TypedArray, shape: Int32Array, begin: Int32Array, size: Int32Array): void;
  concat(inputs: TypedArray[], y: TypedArray, outer: number, widths: Int32Array): void;
  gather(x: TypedArray, indices: Int32Array, y: TypedArray, outer: number, axisSize: number, inner: number): void;
  segmentSum(x: Float32Array, ids: Int32Array, y: Float32Array, numSegments: number): void;
  crossEntropy(logits: Float32Array, targets: Int32Array, loss: Float32Array, lse: Float32Array, rows: number, vocab: number, ignore: number): void;
  crossEntropyGrad(logits: Float32Array, targets: Int32Array, lse: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, vocab: number, ignore: number): void;
  rmsNorm(x: Float32Array, w: Float32Array, y: Float32Array, rstd: Float32Array, rows: number, hidden: number, eps: number): void;
  rmsNormGrad(x: Float32Array, w: Float32Array, rstd: Float32Array, dy: Float32Array, dx: Float32Array, dw: Float32Array, rows: number, hidden: number): void;
  adam(
    p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, pOut: Float32Array, mOut: Float32Array, vOut: Float32Array,
    lr: number, beta1: number, beta2: number, eps: number, correction1: number, correction2: number, decay: number, decoupled: boolean,
  ): void;
  swiglu(gate: Float32Array, up: Float32Array, h: Float32Array): void;
  swigluGrad(gate: Float32Array, up: Float32Array, dh: Float32Array, dGate: Float32Array, dUp: Float32Array): void;
  rope(x: Float32Array, cos: Float32Array, sin: Float32Array, y: Float32Array, outer: number, T: number, D: number, backward: boolean): void;
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, ...shape: AttentionShape): void;
  attentionGrad(
    q: Float32Array, k: Float32Array, v: Float32Array, dOut: Float32Array, lse: Float32Array, dq: Float32Array, dk: Float32Array, dv: Float32Array, ...shape: AttentionShape
  ): void;
  /** y [M, N] = x [M, K] op(w) (+ bias [N]); op(w) is w [K, N], or w stored [N, K] when transW. */
  linear(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, M: number, K: number, N: number, transW: boolean): void;
  /** See native/src/decode.cc: rotates and writes T new keys and values into the caches, then attends over them. */
  attendCached(
    q: Float32Array, k: Float32Array, v: Float32Array, kCache: Float32Array, vCache: Float32Array, out: Float32Array, cos: Float32Array, sin: Float32Array,
    T: number, offset: number, nH: number, nKV: number, hd: number, capacity: number, scale: number, window: number,
  ): void;
}

/** B, nH, nKV, T, S, headDim, offset, scale. */
type AttentionShape = [number, number, number, number, number, number, number, number];

export type TypedArray = Float32Array | Int32Array | Uint8Array;

/** Operation codes shared with native/src/kernels_impl.h. */
export const UNARY = { Exp: 0, Log: 1, Neg: 2, Sigmoid: 3, Sqrt: 4, Rsqrt: 5, Square: 6, Abs: 7, Reciprocal: 8, Tanh: 9, Relu: 10, Log1p: 11 } as const;
export const BINARY = { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, Maximum: 4, Minimum: 5, SquaredDifference: 6, Pow: 7 } as const;
export const COMPARE = { Equal: 0, NotEqual: 1, Less: 2, LessEqual: 3, Greater: 4, GreaterEqual: 5 } as const;
export const REDUCE = { Sum: 0, Mean: 1, Max: 2, Min: 3, Prod: 4 } as const;

/** The addon's ABI this TypeScript expects; a stale build with another one is not loaded. */
const ABI_VERSION = 5;

/**
 * The addon, or why there is none. `expected` is true when this machine cannot build it by
 * design (no compiler, no OpenBLAS, DEEPEN_NATIVE=0) and false when it should have it (a
 * failed compile, a missing or broken binary).
 */
export type BindingLoad = { ok: true; binding: NativeBinding; path: string } | { ok: false; reason: string; expected: boolean };

const require = createRequire(import.meta.url);

/** The package folder (where native/ lives), from the source tree or the built dist/. */
function packageRoot(): string {
  return dirname(require.resolve('@deepen/backend/package.json'));
}

let cached: BindingLoad | null = null;

/** The addon of this package, loaded once (see loadBindingFrom). */
export function loadBinding(): BindingLoad {
  cached ??= loadBindingFrom(packageRoot());
  return cached;
}

/**
 * Loads the addon that native/build.mjs built under `root` at install time. When there is
 * none, the reason comes from the build's status file (no compiler, no OpenBLAS, a failed
 * compile...).
 */
export function loadBindingFrom(root: string): BindingLoad {
  const path = join(root, 'native', 'build', 'Release', 'deepen_native.node');
  const statusPath = join(root, 'native', 'build', 'status.json');
  if (!existsSync(path)) {
    let reason = 'the native addon was not built (run `pnpm rebuild @deepen/backend`, or `node native/build.mjs` in the package)';
    let expected = false;
    try {
      const status = JSON.parse(readFileSync(statusPath, 'utf8')) as { ok: boolean; reason?: string; expected?: boolean };
      if (!status.ok && status.reason) reason = `not built at install: ${status.reason}`;
      expected = status.expected === true;
    } catch {
      // No status file: the install script never ran (e.g. installed with --ignore-scripts).
    }
    return { ok: false, reason, expected };
  }
  try {
    const binding = require(path) as NativeBinding;
    if (binding.abiVersion !== ABI_VERSION) {
      return { ok: false, expected: false, reason: `the native addon at ${path} is stale (ABI ${binding.abiVersion}, expected ${ABI_VERSION}); rebuild it with \`node native/build.mjs\`` };
    }
    return { ok: true, binding, path };
  } catch (error) {
    // Typically a missing shared library (libopenblas.so.0) or a Node ABI mismatch.
    const message = String((error as Error).message ?? error).split('\n')[0];
    return { ok: false, expected: false, reason: `the native addon failed to load: ${message}` };
  }
}
