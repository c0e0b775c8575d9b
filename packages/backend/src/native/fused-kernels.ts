import { util } from '@tensorflow/tfjs';
import type { KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { FUSED_KERNELS } from '../fused/index.js';
import type { NativeBinding } from './binding.js';
import { floats, valuesOf, type Inputs } from './storage.js';

function expectFloat(kernel: string, inputs: Inputs): void {
  for (const [name, t] of Object.entries(inputs)) {
    if (t && name !== 'targets' && t.dtype !== 'float32') throw new Error(`${kernel}: input '${name}' must be float32, got ${t.dtype}`);
  }
}

function attentionShape(kernel: string, q: TensorInfo, k: TensorInfo, v: TensorInfo, attrs: NamedAttrMap) {
  const [B, nH, T, hd] = q.shape as [number, number, number, number];
  const [Bk, nKV, S, hdk] = k.shape as [number, number, number, number];
  const offset = Number(attrs.offset ?? 0);
  if (q.shape.length !== 4 || k.shape.length !== 4 || !util.arraysEqual(k.shape, v.shape) || Bk !== B || hdk !== hd || nH % nKV !== 0 || offset + T > S) {
    throw new Error(`${kernel}: q [${q.shape}], k [${k.shape}], v [${v.shape}] with offset ${offset} do not fit [B, nH, T, hd] x [B, nKV, S, hd], nKV dividing nH, offset + T <= S`);
  }
  return [B, nH, nKV, T, S, hd, offset, Number(attrs.scale)] as [number, number, number, number, number, number, number, number];
}

/** The fused kernels of src/fused (forward and backward) in C++. */
export function fusedKernels(binding: NativeBinding): Record<string, KernelFunc> {
  const out = (backend: MathBackendCPU, shape: number[], values: Float32Array) => backend.makeTensorInfo(shape, 'float32', values);
  return {
    [FUSED_KERNELS.crossEntropy]: ({ inputs, backend, attrs }) => {
      const { logits, targets } = inputs as Inputs;
      expectFloat(FUSED_KERNELS.crossEntropy, { logits });
      const cpu = backend as MathBackendCPU;
      const [rows, vocab] = logits!.shape as [number, number];
      if (logits!.shape.length !== 2 || targets!.dtype !== 'int32' || !util.arraysEqual(targets!.shape, [rows])) {
        throw new Error(`${FUSED_KERNELS.crossEntropy}: logits must be [N, V] and targets int32 [N], got [${logits!.shape}] and ${targets!.dtype} [${targets!.shape}]`);
      }
      const loss = new Float32Array(rows);
      const lse = new Float32Array(rows);
      binding.crossEntropy(floats(cpu, logits!), valuesOf(cpu, targets!) as Int32Array, loss, lse, rows, vocab, Number(attrs!.ignoreIndex));
      return [out(cpu, [rows], loss), out(cpu, [rows], lse)];
    },
    [FUSED_KERNELS.crossEntropyGrad]: ({ inputs, backend, attrs }) => {
      const { logits, targets, lse, dy } = inputs as Inputs;
      const cpu = backend as MathBackendCPU;
      const [rows, vocab] = logits!.shape as [number, number];
      const dx = new Float32Array(rows * vocab);
      binding.crossEntropyGrad(floats(cpu, logits!), valuesOf(cpu, targets!) as Int32Array, floats(cpu, lse!), floats(cpu, dy!), dx, rows, vocab, Number(attrs!.ignoreIndex));
      return out(cpu, logits!.shape, dx);
    },
    [FUSED_KERNELS.rmsNorm]: ({ inputs, backend, attrs }) => {
      const { x, weight } = inputs as Inputs;
      expectFloat(FUSED_KERNELS.rmsNorm, { x, weight });
      const cpu = backend as MathBackendCPU;
      const hidden = x!.shape[x!.shape.length - 1] as number;
      if (!util.arraysEqual(weight!.shape, [hidden])) throw new Error(`${FUSED_KERNELS.rmsNorm}: weight [${weight!.shape}] does not match the last axis of x [${x!.shape}]`);
      const rows = util.sizeFromShape(x!.shape) / hidden;
      const y = new Float32Array(rows * hidden);
      const rstd = new Float32Array(rows);
      binding.rmsNorm(floats(cpu, x!), floats(cpu, weight!), y, rstd, rows, hidden, Number(attrs!.eps));
      return [out(cpu, x!.shape, y), out(cpu, [rows], rstd)];
    },
    [FUSED_KERNELS.rmsNormGrad]: ({ inputs, backend }) => {
      const { x, weight, rstd, dy } = inputs as Inputs;
      const cpu = backend as MathBackendCPU;
      const hidden = weight!.shape[0] as number;
      const rows = util.sizeFromShape(x!.shape) / hidden;
      const dx = new Float32Array(rows * hidden);
      const dw = new Float32Array(hidden);
      binding.rmsNormGrad(floats(cpu, x!), floats(cpu, weight!), floats(cpu, rstd!), floats(cpu, dy!), dx, dw, rows, hidden);
      return [out(cpu, x!.shape, dx), out(cpu, weight!.shape, dw)];
    },
    [FUSED_KERNELS.swiGlu]: ({ inputs, backend }) => {
      const { gate, up } = inputs as Inputs;
      expectFloat(FUSED_KERNELS.swiGlu, { gate, up });
      if (!util.arraysEqual(gate!.shape, up!.shape)) throw new Error(`${FUSED_KERNELS.swiGlu}: gate [${gate!.shape}] and up [${up!.shape}] differ`);
      const cpu = backend as MathBackendCPU;
      const h = new Float32Array(util.sizeFromShape(gate!.shape));
      binding.swiglu(floats(cpu, gate!), floats(cpu, up!), h);
      return out(cpu, gate!.shape, h);
    },
    [FUSED_KERNELS.swiGluGrad]: ({ inputs, backend }) => {
      const { gate, up, dy } = inputs as Inputs;
      const cpu = backend as MathBackendCPU;
      const n = util.sizeFromShape(gate!.shape);
      const dGate = new Float32Array(n);
      const dUp = new Float32Array(n);
      binding.swigluGrad(floats(cpu, gate!), floats(cpu, up!), floats(cpu, dy!), dGate, dUp);
      return [out(cpu, gate!.shape, dGate), out(cpu, up!.shape, dUp)];
    },
    [FUSED_KERNELS.rope]: ({ inputs, backend, attrs }) => {
      const { x, cos, sin } = inputs as Inputs;
      expectFloat(FUSED_KERNELS.rope, { x, cos, sin });
      const rank = x!.shape.length;
      const [T, D] = x!.shape.slice(-2) as [number, number];
      if (rank < 2 || !util.arraysEqual(cos!.shape, [T, D]) || !util.arraysEqual(sin!.shape, [T, D]) || D % 2 !== 0) {
        throw new Error(`${FUSED_KERNELS.rope}: x [${x!.shape}] needs cos and sin of shape [T, D] = [${T}, ${D}] with D even, got [${cos!.shape}] and [${sin!.shape}]`);
      }
      const cpu = backend as MathBackendCPU;
      const y = new Float32Array(util.sizeFromShape(x!.shape));
      binding.rope(floats(cpu, x!), floats(cpu, cos!), floats(cpu, sin!), y, y.length / (T * D), T, D, Boolean(attrs!.backward));
      return out(cpu, x!.shape, y);
    },
    [FUSED_KERNELS.attention]: ({ inputs, backend, attrs }) => {
      const { q, k, v } = inputs as Inputs;
      expectFloat(FUSED_KERNELS.attention, { q, k, v });
      const shape = attentionShape(FUSED_KERNELS.attention, q!, k!, v!, attrs!);
      const cpu = backend as MathBackendCPU;
      const [B, nH, , T] = shape;
      const o = new Float32Array(util.sizeFromShape(q!.shape));
      const lse = new Float32Array(B * nH * T);
      binding.attention(floats(cpu, q!), floats(cpu, k!), floats(cpu, v!), o, lse, ...shape);
      return [out(cpu, q!.shape, o), out(cpu, [B, nH, T], lse)];
    },
    [FUSED_KERNELS.attentionGrad]: ({ inputs, backend, attrs }) => {
      const { q, k, v, dOut, lse } = inputs as Inputs;
      const shape = attentionShape(FUSED_KERNELS.attentionGrad, q!, k!, v!, attrs!);
      const cpu = backend as MathBackendCPU;
      const dq = new Float32Array(util.sizeFromShape(q!.shape));
      const dk = new Float32Array(util.sizeFromShape(k!.shape));
      const dv = new Float32Array(util.sizeFromShape(v!.shape));
      binding.attentionGrad(floats(cpu, q!), floats(cpu, k!), floats(cpu, v!), floats(cpu, dOut!), floats(cpu, lse!), dq, dk, dv, ...shape);
      return [out(cpu, q!.shape, dq), out(cpu, k!.shape, dk), out(cpu, v!.shape, dv)];
    },
    [FUSED_KERNELS.adam]: ({ inputs, backend, attrs }) => {
      const { param, grad, m, v } = inputs as Inputs;
      expectFloat(FUSED_KERNELS.adam, { param, grad, m, v });
      if (![grad, m, v].every((t) => util.arraysEqual(t!.shape, param!.shape))) throw new Error(`${FUSED_KERNELS.adam}: param, grad, m and v must have one shape`);
      const cpu = backend as MathBackendCPU;
      const n = util.sizeFromShape(param!.shape);
      const [p1, m1, v1] = [new Float32Array(n), new Float32Array(n), new Float32Array(n)];
      const a = attrs as unknown as { lr: number; beta1: number; beta2: number; eps: number; correction1: number; correction2: number; decay: number; decoupled: boolean };
      binding.adam(floats(cpu, param!), floats(cpu, grad!), floats(cpu, m!), floats(cpu, v!), p1, m1, v1, a.lr, a.beta1, a.beta2, a.eps, a.correction1, a.correction2, a.decay, a.decoupled);
      return [out(cpu, param!.shape, p1), out(cpu, param!.shape, m1), out(cpu, param!.shape, v1)];
    },
  };
}
