import * as tf from '@tensorflow/tfjs';
import type { AdamStep } from '../src/fused/index.js';
import { assertNoLeaks } from '../src/leaks.js';
import type * as composite from '../src/ops/composite.js';
import { Rng } from '@deepen/core';

/**
 * The cases every op is tested on (not part of the package's API): each runs one
 * implementation, the op or its composite, forward and (for the differentiable ops) backward
 * through tf.grads, and returns the values it computed as plain arrays. Inputs are drawn once,
 * so every engine and implementation sees the same numbers.
 *
 * Each run asserts that the forward call leaves exactly its outputs alive (the op releases
 * its intermediates even outside a tidy scope) and that the whole run leaves nothing.
 */

/** What the cases call: the ops of src/ops, or the composites of src/ops/composite. */
export type OpImpl = Pick<typeof composite, 'rmsNorm' | 'swiGlu' | 'applyRope' | 'causalAttention' | 'crossEntropy' | 'adamUpdate'>;

export interface OpCase {
  label: string;
  /** Names of the returned arrays, in order: outputs, then gradients. */
  names: string[];
  /** Tolerance (rtol, atol) of the fused kernel against the composite. */
  tolerance: [number, number];
  run: (impl: OpImpl) => number[][];
}

const rng = Rng.fromSeed(7);
const normals = (n: number, scale = 1) => rng.fillNormal(new Float32Array(n), 0, scale);
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Runs `work` with the given inputs made into tensors, then releases them; checks for leaks. */
function withInputs(label: string, inputs: Array<[Float32Array | Int32Array, number[]]>, work: (...xs: tf.Tensor[]) => number[][]): number[][] {
  return assertNoLeaks(`${label}: inputs to arrays`, () => {
    const xs = inputs.map(([values, shape]) => tf.tensor(values, shape, values instanceof Int32Array ? 'int32' : 'float32'));
    try {
      return work(...xs);
    } finally {
      tf.dispose(xs);
    }
  });
}

/** The op's outputs, checked to be the only tensors the call leaves alive. */
function forward<T extends tf.Tensor | tf.Tensor[]>(label: string, call: () => T, outputs = 1): T {
  return assertNoLeaks(`${label}: forward`, call, { expectedNew: outputs });
}

/** Values of the outputs and of the gradients of sum(output * weights) with respect to `xs`. */
function valuesAndGrads(label: string, f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], outShape: number[]): number[][] {
  const out = forward(label, () => f(...xs));
  const values = Array.from(out.dataSync());
  out.dispose();
  const weights = tf.tensor(normalsFor(label, size(outShape)), outShape);
  const grads = tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(f(...args), weights)))(xs);
  const result = [values, ...grads.map((g) => Array.from(g.dataSync()))];
  tf.dispose([weights, ...grads]);
  return result;
}

/** Upstream gradients, drawn once per case label so every implementation gets the same. */
const upstream = new Map<string, Float32Array>();
function normalsFor(label: string, n: number): Float32Array {
  let values = upstream.get(label);
  if (!values) upstream.set(label, (values = normals(n)));
  return values;
}

function rmsNormCase(shape: number[], eps: number): OpCase {
  const hidden = shape.at(-1) as number;
  const x = normals(size(shape), 2);
  const w = normals(hidden);
  const label = `rmsNorm [${shape}]`;
  return {
    label,
    names: ['y', 'dx', 'dweight'],
    tolerance: [1e-4, 1e-5],
    run: (impl) => withInputs(label, [[x, shape], [w, [hidden]]], (xt, wt) => valuesAndGrads(label, (a, b) => impl.rmsNorm(a!, b!, eps), [xt!, wt!], shape)),
  };
}

function swiGluCase(shape: number[]): OpCase {
  const gate = normals(size(shape), 3);
  const up = normals(size(shape));
  const label = `swiGlu [${shape}]`;
  return {
    label,
    names: ['h', 'dgate', 'dup'],
    tolerance: [1e-5, 1e-6],
    run: (impl) => withInputs(label, [[gate, shape], [up, shape]], (g, u) => valuesAndGrads(label, (a, b) => impl.swiGlu(a!, b!), [g!, u!], shape)),
  };
}

function ropeCase(shape: number[]): OpCase {
  const [T, D] = shape.slice(-2) as [number, number];
  const x = normals(size(shape));
  const cos = normals(T * D);
  const sin = normals(T * D);
  const label = `applyRope [${shape}]`;
  return {
    label,
    names: ['y', 'dx'],
    tolerance: [1e-5, 1e-6],
    run: (impl) =>
      withInputs(label, [[x, shape], [cos, [T, D]], [sin, [T, D]]], (xt, c, s) => valuesAndGrads(label, (a) => impl.applyRope(a!, c!, s!), [xt!], shape)),
  };
}

function attentionCase(B: number, nH: number, nKV: number, T: number, S: number, hd: number): OpCase {
  const q = normals(B * nH * T * hd);
  const k = normals(B * nKV * S * hd);
  const v = normals(B * nKV * S * hd);
  const options = { scale: 1 / Math.sqrt(hd), offset: S - T };
  const label = `causalAttention B${B} nH${nH} nKV${nKV} T${T} S${S} hd${hd} offset${options.offset}`;
  const qShape = [B, nH, T, hd];
  const kvShape = [B, nKV, S, hd];
  return {
    label,
    names: ['out', 'dq', 'dk', 'dv'],
    tolerance: [1e-4, 1e-5],
    run: (impl) =>
      withInputs(label, [[q, qShape], [k, kvShape], [v, kvShape]], (qt, kt, vt) =>
        valuesAndGrads(label, (a, b, c) => impl.causalAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, options), [qt!, kt!, vt!], qShape),
      ),
  };
}

function crossEntropyCase(N: number, V: number, ignoreIndex: number): OpCase {
  const logits = normals(N * V, 3);
  // Every fifth row is ignored.
  const targets = Int32Array.from({ length: N }, (_, i) => (i % 5 === 0 ? ignoreIndex : rng.int(V)));
  const label = `crossEntropy [${N}, ${V}] ignoreIndex ${ignoreIndex}`;
  return {
    label,
    names: ['loss', 'dlogits'],
    tolerance: [1e-4, 1e-6],
    run: (impl) =>
      withInputs(label, [[logits, [N, V]], [targets, [N]]], (l, t) => valuesAndGrads(label, (a) => impl.crossEntropy(a as tf.Tensor2D, t as tf.Tensor1D, ignoreIndex), [l!], [N])),
  };
}

function adamCase(n: number, decay: number, decoupled: boolean): OpCase {
  const p = normals(n);
  const g = normals(n);
  const m = normals(n, 0.1);
  const v = Float32Array.from(normals(n, 0.1), Math.abs);
  const step: AdamStep = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, correction1: 1 - 0.9 ** 3, correction2: 1 - 0.999 ** 3, decay, decoupled };
  const label = `adamUpdate ${decoupled ? 'AdamW' : 'Adam'} decay ${decay}`;
  return {
    label,
    names: ['param', 'm', 'v'],
    tolerance: [1e-5, 1e-7],
    run: (impl) =>
      withInputs(label, [[p, [n]], [g, [n]], [m, [n]], [v, [n]]], (pt, gt, mt, vt) => {
        const outs = forward(label, () => impl.adamUpdate(pt!, gt!, mt!, vt!, step), 3);
        const values = outs.map((t) => Array.from(t.dataSync()));
        tf.dispose(outs);
        return values;
      }),
  };
}

export const OP_CASES: OpCase[] = [
  rmsNormCase([3, 5, 48], 1e-6),
  rmsNormCase([7, 32], 1e-5),
  swiGluCase([4, 33]),
  ropeCase([2, 3, 5, 8]),
  ropeCase([4, 6, 16]),
  attentionCase(2, 4, 4, 7, 7, 8), // multi-head, no cache
  attentionCase(2, 4, 2, 5, 5, 8), // GQA nKV=2
  attentionCase(1, 4, 1, 6, 6, 4), // GQA nKV=1 (multi-query)
  attentionCase(1, 4, 2, 5, 9, 4), // GQA with a KV cache: offset 4
  attentionCase(2, 4, 1, 3, 8, 16), // multi-query with a KV cache: offset 5
  attentionCase(1, 4, 2, 1, 6, 8), // one decoded token: offset 5
  attentionCase(1, 6, 2, 5, 9, 4),
  crossEntropyCase(37, 1003, -100),
  crossEntropyCase(12, 50, 3), // an ignoreIndex inside the vocabulary
  adamCase(50, 0, false),
  adamCase(50, 0.1, false), // L2 decay in the gradient
  adamCase(50, 0.1, true), // AdamW: decoupled decay
];
