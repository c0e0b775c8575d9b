import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { ENGINE_ORDER, type EngineLoader } from './engines.js';
import { BackendUnavailableError, initBackend } from './init.js';
import { EngineUnavailableError } from './load-errors.js';
import { formatBackendReport } from './report.js';

/** Errors exactly as the real native packages throw them when something is missing. */
const notInstalled = (name: string): EngineLoader => async () => {
  throw Object.assign(new Error(`Cannot find package '${name}' imported from /app/index.js`), { code: 'ERR_MODULE_NOT_FOUND' });
};
const cudaMissing: EngineLoader = async () => {
  throw new Error('libcudart.so.11.0: cannot open shared object file: No such file or directory');
};
/** What the native engine's loader throws when its install step could not build the addon. */
const nativeNotBuilt: EngineLoader = async () => {
  throw new EngineUnavailableError('not built at install: OpenBLAS development files not found (Debian: apt-get install libopenblas-dev)');
};

/**
 * Stands in for tfjs-node(-gpu) the way the real package behaves on import: it registers a
 * 'tensorflow' backend. The backend is tfjs's cpu backend with the GPU flag the node backend has.
 */
function registersTensorflowBackend(options: { gpu: boolean } | { factoryError: string }): EngineLoader {
  return async () => {
    const CpuBackend = (tf.findBackend('cpu') as object).constructor as new () => tf.KernelBackend;
    tf.registerBackend('tensorflow', () => {
      if ('factoryError' in options) throw new Error(options.factoryError);
      return Object.assign(new CpuBackend(), { isUsingGpuDevice: options.gpu });
    });
    return { version: { 'tfjs-node': '4.22.0-test' } };
  };
}

afterEach(async () => {
  if (tf.findBackendFactory('tensorflow')) tf.removeBackend('tensorflow');
  await tf.setBackend('cpu');
});

describe('initBackend: automatic selection', () => {
  it('takes the engines in order and says why each preferred one was rejected', async () => {
    const report = await initBackend({
      env: {},
      loaders: { 'node-gpu': cudaMissing, node: notInstalled('@tensorflow/tfjs-node'), native: nativeNotBuilt },
    });
    expect(report.engine).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(report.requestedBy).toBe('default');
    expect(report.rejected.map((r) => r.engine)).toEqual(['node-gpu', 'node', 'native']);
    expect(report.rejected[0]?.reason).toMatch(/CUDA libraries missing: libcudart\.so\.11\.0/);
    expect(report.rejected[1]?.reason).toBe('not installed: the npm package @tensorflow/tfjs-node is missing');
    // The native loader's own words pass through unchanged: they already say what to install.
    expect(report.rejected[2]?.reason).toBe('not built at install: OpenBLAS development files not found (Debian: apt-get install libopenblas-dev)');
    expect(report.simd).toBe(true);
    expect(report.threads).toBe(1);
    expect(report.kernels.replaced).toContain('UnsortedSegmentSum');
    const text = formatBackendReport(report);
    expect(text).toMatch(/^engine {5}wasm \(@tensorflow\/tfjs-backend-wasm 4\.22\.0, tfjs-core 4\.22\.0\)/);
    expect(text).toMatch(/node-gpu {2}CUDA libraries missing/);
    expect(text).toMatch(/simd {7}yes/);
  });

  it('reports the real state of the native engines installed here', async () => {
    // Whatever this machine has: a native engine either runs or is rejected with a known reason.
    const report = await initBackend({ env: {} });
    const chosenAt = ENGINE_ORDER.indexOf(report.engine);
    expect(report.rejected.map((r) => r.engine)).toEqual(ENGINE_ORDER.slice(0, chosenAt));
    for (const r of report.rejected) {
      expect(r.reason).toMatch(
        /^(not installed|native addon missing|CUDA libraries missing|libtensorflow|native library|backend 'tensorflow' failed|libtensorflow loaded but found no CUDA GPU|not built at install|the native addon)/,
      );
    }
  });

  it('rejects a GPU engine that would silently run on the CPU', async () => {
    const report = await initBackend({
      env: {},
      loaders: { 'node-gpu': registersTensorflowBackend({ gpu: false }), node: notInstalled('@tensorflow/tfjs-node'), native: nativeNotBuilt },
    });
    expect(report.engine).toBe('wasm');
    expect(report.rejected[0]?.reason).toMatch(/found no CUDA GPU.*silently run on the CPU/);
    expect(tf.findBackendFactory('tensorflow')).toBeNull();
  });

  it('chooses the GPU engine when it loads and sees a GPU', async () => {
    const report = await initBackend({ env: {}, loaders: { 'node-gpu': registersTensorflowBackend({ gpu: true }) } });
    expect(report.engine).toBe('node-gpu');
    expect(report.tfBackend).toBe('tensorflow');
    expect(report.version).toBe('4.22.0-test');
    expect(report.device).toMatch(/^GPU: /);
    expect(report.rejected).toEqual([]);
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('passes on the cause when a loaded engine fails to initialise', async () => {
    const report = await initBackend({
      env: {},
      loaders: { 'node-gpu': cudaMissing, node: registersTensorflowBackend({ factoryError: 'TF_SessionRun failed: out of memory' }), native: nativeNotBuilt },
    });
    expect(report.engine).toBe('wasm');
    expect(report.rejected[1]?.reason).toMatch(/^backend 'tensorflow' failed to initialise: .*TF_SessionRun failed: out of memory/);
  });
});

describe('initBackend: explicit requests', () => {
  it('uses DEEPEN_BACKEND when no option is given, and the option over it', async () => {
    const fromEnv = await initBackend({ env: { DEEPEN_BACKEND: 'cpu' } });
    expect(fromEnv.engine).toBe('cpu');
    expect(fromEnv.requestedBy).toBe('DEEPEN_BACKEND=cpu');
    expect(tf.getBackend()).toBe('cpu');
    const fromOption = await initBackend({ engine: 'wasm', env: { DEEPEN_BACKEND: 'cpu' } });
    expect(fromOption.engine).toBe('wasm');
    expect(fromOption.requestedBy).toBe('engine option');
    expect(fromOption.rejected).toEqual([]);
  });

  it('fails loudly instead of falling back when the requested engine cannot start', async () => {
    await tf.setBackend('cpu');
    const attempt = initBackend({ engine: 'node', engineSource: '--backend', loaders: { node: notInstalled('@tensorflow/tfjs-node') } });
    await expect(attempt).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(initBackend({ engine: 'node', engineSource: '--backend', loaders: { node: notInstalled('@tensorflow/tfjs-node') } })).rejects.toThrow(
      "engine 'node' (requested by --backend) cannot start: not installed: the npm package @tensorflow/tfjs-node is missing",
    );
    expect(tf.getBackend()).toBe('cpu');
  });

  it('names the known engines when the name is unknown', async () => {
    await expect(initBackend({ engine: 'tpu' })).rejects.toThrow("engine option: unknown engine 'tpu'; known engines: auto, node-gpu, node, native, wasm, cpu");
    await expect(initBackend({ env: { DEEPEN_BACKEND: 'gpu' } })).rejects.toThrow(/^DEEPEN_BACKEND: unknown engine 'gpu'/);
  });

  it('accepts names in any case and ignores an empty DEEPEN_BACKEND', async () => {
    expect((await initBackend({ engine: 'CPU' })).engine).toBe('cpu');
    const report = await initBackend({ env: { DEEPEN_BACKEND: ' ' }, loaders: { 'node-gpu': cudaMissing, node: cudaMissing } });
    expect(report.requestedBy).toBe('default');
  });
});
