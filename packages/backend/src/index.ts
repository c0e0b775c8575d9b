export { initBackend, BackendUnavailableError, BACKEND_ENV_VAR } from './init.js';
export type { InitBackendOptions } from './init.js';
export { ENGINE_ORDER, ENGINE_SPECS, parseEngineRequest } from './engines.js';
export type { EngineName, EngineRequest, EngineFacts, EngineLoader, EngineSpec } from './engines.js';
export { formatBackendReport } from './report.js';
export type { BackendReport, RejectedEngine } from './report.js';
export { explainLoadFailure, EngineUnavailableError } from './load-errors.js';
export { prepareEngine, scatterAddSegments, originalKernel } from './kernels/index.js';
export type { PreparedKernels } from './kernels/index.js';
export { Rng, randomNormal, randomUniform } from './random.js';
export type { RngState } from './random.js';
export { liveTensorCount, assertNoLeaks, TensorCountWatch, TensorLeakError, tidyValues } from './leaks.js';
export type { LeakCheckOptions } from './leaks.js';
export {
  float32ToBf16Bits,
  bf16BitsToFloat32,
  float32ToF16Bits,
  f16BitsToFloat32,
  float32ToBf16,
  bf16ToFloat32,
  float32ToF16,
  f16ToFloat32,
} from './float-bits.js';
export { writeFileAtomic, writeDirAtomic } from './atomic-fs.js';
export { profileKernels, formatKernelProfile } from './profile.js';
export type { KernelProfile, KernelTime } from './profile.js';
export { NATIVE_BACKEND, nativeEngineStatus } from './native/backend.js';
export type { NativeEngineStatus } from './native/backend.js';
export { FUSED_KERNELS, hasFused } from './fused/index.js';
export type { FusedOp, AdamStep } from './fused/index.js';
export { rmsNorm, swiGlu, applyRope, causalAttention, crossEntropy, adamUpdate } from './ops/index.js';
export type { CausalAttentionOptions } from './ops/index.js';
export * as composite from './ops/composite.js';
export { parseFlags, helpText, UsageError } from './flags.js';
export type { FlagSpec, FlagValues } from './flags.js';
