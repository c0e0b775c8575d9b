import * as tf from '@tensorflow/tfjs';
import {
  DEFAULT_LOADERS,
  ENGINE_ORDER,
  ENGINE_SPECS,
  parseEngineRequest,
  type EngineLoader,
  type EngineName,
  type EngineRequest,
} from './engines.js';
import { prepareEngine } from './kernels/index.js';
import { explainLoadFailure } from './load-errors.js';
import type { BackendReport, RejectedEngine } from './report.js';

/** The environment variable that picks the engine when no option does. */
export const BACKEND_ENV_VAR = 'DEEPEN_BACKEND';

export interface InitBackendOptions {
  /** Engine to use, or 'auto'. Wins over DEEPEN_BACKEND. */
  engine?: EngineRequest | string;
  /** How to name the `engine` option in messages, e.g. '--backend' in a CLI. Default 'engine option'. */
  engineSource?: string;
  /** Where DEEPEN_BACKEND is read from (defaults to process.env). */
  env?: Record<string, string | undefined>;
  /**
   * Replacement loaders, keyed by engine. Tests use this to stand in for the native engines
   * that are not installed; applications never need it.
   */
  loaders?: Partial<Record<EngineName, EngineLoader>>;
}

/** A requested engine could not start. The message carries the reason. */
export class BackendUnavailableError extends Error {
  constructor(
    readonly engine: EngineName,
    readonly reason: string,
    readonly requestedBy: string,
  ) {
    super(`engine '${engine}' (requested by ${requestedBy}) cannot start: ${reason}`);
    this.name = 'BackendUnavailableError';
  }
}

type Attempt = { ok: true; module: unknown } | { ok: false; reason: string };

/**
 * tfjs reports a failed backend start only as `false` from setBackend and logs the cause
 * through console.warn (as it does duplicate kernel registrations during a load). Capture
 * those lines so the reason reaches the report instead of scrolling past.
 */
async function capturingWarnings<T>(work: () => Promise<T>): Promise<{ result?: T; error?: unknown; warnings: string[] }> {
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    warnings.push(args.map(String).join(' '));
  };
  try {
    return { result: await work(), warnings };
  } catch (error) {
    return { error, warnings };
  } finally {
    console.warn = warn;
  }
}

/** Removes what a failed native engine left behind, so the next candidate starts clean. */
function forgetBackend(tfBackend: string): void {
  if (tfBackend === 'cpu' || tfBackend === 'wasm') return;
  for (const kernel of tf.getKernelsForBackend(tfBackend)) tf.unregisterKernel(kernel.kernelName, tfBackend);
  if (tf.findBackendFactory(tfBackend)) tf.removeBackend(tfBackend);
}

async function tryEngine(name: EngineName, loader: EngineLoader): Promise<Attempt> {
  const spec = ENGINE_SPECS[name];
  const loaded = await capturingWarnings(loader);
  if (loaded.error !== undefined) {
    forgetBackend(spec.tfBackend);
    return { ok: false, reason: explainLoadFailure(spec.packageName, loaded.error) };
  }
  if (!tf.findBackendFactory(spec.tfBackend)) {
    return { ok: false, reason: `${spec.packageName} loaded but registered no '${spec.tfBackend}' backend` };
  }
  const started = await capturingWarnings(async () => {
    const ok = await tf.setBackend(spec.tfBackend);
    await tf.ready();
    return ok && tf.getBackend() === spec.tfBackend;
  });
  if (started.result !== true) {
    forgetBackend(spec.tfBackend);
    const messages = [
      ...(started.error !== undefined ? [String((started.error as Error)?.message ?? started.error)] : []),
      ...started.warnings.filter((w) => !/^Initialization of backend .* failed$/.test(w)),
    ];
    const cause = messages[0]?.split('\n')[0];
    return { ok: false, reason: `backend '${spec.tfBackend}' failed to initialise${cause ? `: ${cause}` : ''}` };
  }
  if (name === 'node-gpu') {
    // tfjs-node-gpu quietly runs on the CPU when the CUDA libraries or the device are missing.
    const usingGpu = (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice;
    if (usingGpu !== true) {
      forgetBackend(spec.tfBackend);
      return {
        ok: false,
        reason:
          'libtensorflow loaded but found no CUDA GPU (missing device, driver, or CUDA 11.2 / cuDNN 8.1 libraries); it would silently run on the CPU',
      };
    }
  }
  return { ok: true, module: loaded.result };
}

function resolveRequest(options: InitBackendOptions): { request: EngineRequest; requestedBy: string } {
  if (options.engine !== undefined) {
    const source = options.engineSource ?? 'engine option';
    return { request: parseEngineRequest(String(options.engine), source), requestedBy: source };
  }
  const fromEnv = (options.env ?? process.env)[BACKEND_ENV_VAR];
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    return { request: parseEngineRequest(fromEnv, BACKEND_ENV_VAR), requestedBy: `${BACKEND_ENV_VAR}=${fromEnv}` };
  }
  return { request: 'auto', requestedBy: 'default' };
}

/**
 * Chooses, starts and prepares the TensorFlow.js engine.
 *
 * With 'auto' (the default) it tries ENGINE_ORDER and records why each preferred engine was
 * rejected. A specific engine (option or DEEPEN_BACKEND) that cannot start throws
 * BackendUnavailableError: never a silent fallback.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  const { request, requestedBy } = resolveRequest(options);
  const candidates: readonly EngineName[] = request === 'auto' ? ENGINE_ORDER : [request];
  const rejected: RejectedEngine[] = [];

  for (const name of candidates) {
    const loader = options.loaders?.[name] ?? DEFAULT_LOADERS[name];
    const attempt = await tryEngine(name, loader);
    if (!attempt.ok) {
      if (request !== 'auto') throw new BackendUnavailableError(name, attempt.reason, requestedBy);
      rejected.push({ engine: name, packageName: ENGINE_SPECS[name].packageName, reason: attempt.reason });
      continue;
    }
    const spec = ENGINE_SPECS[name];
    const kernels = prepareEngine(name);
    const facts = await spec.describe(attempt.module);
    return {
      engine: name,
      packageName: spec.packageName,
      tfBackend: spec.tfBackend,
      tfjsVersion: tf.version_core,
      ...facts,
      hints: facts.hints ?? [],
      requested: request,
      requestedBy,
      rejected,
      kernels,
    };
  }
  const reasons = rejected.map((r) => `${r.engine}: ${r.reason}`).join('; ');
  throw new Error(`no TensorFlow.js engine could start (${reasons})`);
}
