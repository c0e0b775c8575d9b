import { availableParallelism, cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import type { NativeRegistration } from './native/backend.js';

/** The engines deepen can run on, most preferred first. */
export const ENGINE_ORDER = ['node-gpu', 'node', 'native', 'wasm', 'cpu'] as const;

export type EngineName = (typeof ENGINE_ORDER)[number];

/** What a user may ask for: an engine, or `auto` for the first that starts in ENGINE_ORDER. */
export type EngineRequest = EngineName | 'auto';

/** What an engine reports about itself once it runs. */
export interface EngineFacts {
  /** Version of the engine's npm package. */
  version: string;
  /** Where the arithmetic happens, in words (CPU model or GPU name). */
  device: string;
  /** Threads the engine's kernels use. */
  threads: number;
  /** Whether the kernels use SIMD instructions; `null` where it cannot be told. */
  simd: boolean | null;
  /** Anything else a user should know about this engine. */
  notes: string[];
  /** How to make this engine faster on this machine, when there is a way (e.g. an OpenBLAS setting). */
  hints?: string[];
}

/** How to load one engine and describe it. */
export interface EngineSpec {
  name: EngineName;
  /** The npm package that provides it. */
  packageName: string;
  /** The name the package registers with TensorFlow.js. */
  tfBackend: string;
  /** Whether the package is an optional dependency that may be absent or unusable. */
  optional: boolean;
  /** Facts about the running engine, given the module its loader returned. */
  describe(module: unknown): Promise<EngineFacts> | EngineFacts;
}

/** Imports an engine's package (which registers its backend with TensorFlow.js). */
export type EngineLoader = () => Promise<unknown>;

function cpuDevice(): string {
  const all = cpus();
  const model = all[0]?.model.trim() || 'unknown CPU';
  return `CPU: ${model}, ${availableParallelism()} logical cores`;
}

function gpuDevice(): string {
  try {
    const names = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 5_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split('\n')
      .filter(Boolean);
    if (names.length > 0) return `GPU: ${names.join(', ')} (CUDA)`;
  } catch {
    // nvidia-smi is a convenience for the report only; TensorFlow already confirmed a GPU.
  }
  return 'GPU: CUDA device';
}

function versionOf(module: unknown, key: string): string {
  const version = (module as { version?: Record<string, string> } | undefined)?.version;
  return version?.[key] ?? 'unknown';
}

export const ENGINE_SPECS: Record<EngineName, EngineSpec> = {
  'node-gpu': {
    name: 'node-gpu',
    packageName: '@tensorflow/tfjs-node-gpu',
    tfBackend: 'tensorflow',
    optional: true,
    describe: (module) => ({
      version: versionOf(module, 'tfjs-node'),
      device: gpuDevice(),
      threads: availableParallelism(),
      simd: null,
      notes: ['libtensorflow with CUDA'],
    }),
  },
  node: {
    name: 'node',
    packageName: '@tensorflow/tfjs-node',
    tfBackend: 'tensorflow',
    optional: true,
    describe: (module) => ({
      version: versionOf(module, 'tfjs-node'),
      device: cpuDevice(),
      threads: availableParallelism(),
      simd: null,
      notes: ['libtensorflow (native, multi-threaded)'],
    }),
  },
  native: {
    name: 'native',
    packageName: '@deepen/backend (native addon)',
    tfBackend: 'deepen-native',
    optional: true,
    describe: (module) => {
      const { binding, nativeKernels } = module as NativeRegistration;
      const blas = binding.blasInfo();
      return {
        version: blas.config.split(' ').slice(0, 2).join(' '),
        device: cpuDevice(),
        threads: blas.threads,
        // OpenBLAS picks its kernels for the CPU at run time (e.g. Haswell = AVX2, SkylakeX = AVX-512).
        simd: true,
        notes: [
          `C++ kernels, matrix products through ${blas.config.split(' ').slice(0, 2).join(' ')} (${blas.core} kernels)`,
          `${nativeKernels.length} native kernels, the rest from the cpu engine`,
        ],
        hints: blasCoreHint(blas.core, binding.isa()),
      };
    },
  },
  wasm: {
    name: 'wasm',
    packageName: '@tensorflow/tfjs-backend-wasm',
    tfBackend: 'wasm',
    optional: false,
    describe: async (module) => {
      const { env } = await import('@tensorflow/tfjs');
      const simd = Boolean(await env().getAsync('WASM_HAS_SIMD_SUPPORT'));
      const threaded = Boolean(await env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
      return {
        version: (module as { version_wasm?: string }).version_wasm ?? 'unknown',
        device: cpuDevice(),
        // The threaded wasm build needs Web Workers with SharedArrayBuffer; in Node it runs on one thread.
        threads: threaded ? availableParallelism() : 1,
        simd,
        notes: threaded ? [] : ['single-threaded in Node.js'],
      };
    },
  },
  cpu: {
    name: 'cpu',
    packageName: '@tensorflow/tfjs-backend-cpu',
    tfBackend: 'cpu',
    optional: false,
    describe: (module) => ({
      version: versionOf(module, 'tfjs-backend-cpu'),
      device: cpuDevice(),
      threads: 1,
      simd: false,
      notes: ['pure JavaScript kernels'],
    }),
  },
};

/**
 * The real loaders. Optional packages are imported through a variable so that neither the
 * type checker nor the bundler needs them to exist.
 */
export const DEFAULT_LOADERS: Record<EngineName, EngineLoader> = {
  'node-gpu': () => importByName(ENGINE_SPECS['node-gpu'].packageName),
  node: () => importByName(ENGINE_SPECS.node.packageName),
  // Registers the backend when the addon built at install time loads; otherwise throws why not.
  native: () => import('./native/backend.js').then((m) => m.registerNativeBackend()),
  wasm: () => import('@tensorflow/tfjs-backend-wasm'),
  // The pure-JS cpu backend ships inside @tensorflow/tfjs and is always registered.
  cpu: () => import('@tensorflow/tfjs'),
};

async function importByName(name: string): Promise<unknown> {
  return import(name);
}

/** Parses an engine request, failing with the list of known names. */
export function parseEngineRequest(value: string, source: string): EngineRequest {
  const name = value.trim().toLowerCase();
  if (name === 'auto' || (ENGINE_ORDER as readonly string[]).includes(name)) return name as EngineRequest;
  throw new Error(`${source}: unknown engine '${value}'; known engines: auto, ${ENGINE_ORDER.join(', ')}`);
}

/** OpenBLAS's generic x86 cores: what it falls back to on a CPU newer than the build knows. */
const GENERIC_BLAS_CORES = /^(prescott|core2|penryn|dunnington|nehalem|atom|katmai|coppermine|northwood|banias|yonah)$/i;

/**
 * A hint when OpenBLAS runs generic kernels on a CPU with wider vectors (an OpenBLAS older than
 * the CPU): naming the nearest core it knows through OPENBLAS_CORETYPE is much faster (2.3x
 * for a training step measured on such a machine). deepen only says so: forcing a core type
 * the CPU cannot run would crash or compute wrong results.
 */
export function blasCoreHint(core: string, isa: string): string[] {
  if (!GENERIC_BLAS_CORES.test(core)) return [];
  const suggestion = isa === 'avx512' ? 'SkylakeX' : isa === 'avx2' ? 'Haswell' : null;
  if (suggestion === null) return [];
  return [`OpenBLAS does not know this CPU and runs its generic ${core} kernels although the CPU has ${isa === 'avx512' ? 'AVX-512' : 'AVX2'}; OPENBLAS_CORETYPE=${suggestion} is usually much faster`];
}
