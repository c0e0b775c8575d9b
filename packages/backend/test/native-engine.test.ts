/**
 * How the native engine is built, found, chosen and reported — including every way it can be
 * missing, since a machine without a compiler or OpenBLAS must still install and run deepen.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { EngineLoader } from '../src/engines.js';
import { initBackend } from '../src/init.js';
import { loadBindingFrom } from '../src/native/binding.js';
import { formatBackendReport } from '../src/report.js';
import { skipNative, skipReason } from './native-support.js';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = () => mkdtempSync(join(tmpdir(), 'deepen-native-'));
const missing = (message: string): EngineLoader => async () => {
  throw Object.assign(new Error(message), { code: 'ERR_MODULE_NOT_FOUND' });
};

afterEach(async () => {
  await tf.setBackend('cpu');
});

describe('finding the addon', () => {
  it('reports the reason the install step recorded when the addon was not built', () => {
    const root = tmp();
    mkdirSync(join(root, 'native', 'build'), { recursive: true });
    writeFileSync(join(root, 'native', 'build', 'status.json'), JSON.stringify({ ok: false, expected: true, reason: 'no C++ compiler (Debian: apt-get install g++ make python3)' }));
    expect(loadBindingFrom(root)).toEqual({ ok: false, expected: true, reason: 'not built at install: no C++ compiler (Debian: apt-get install g++ make python3)' });
  });

  it('says how to build it when the install script never ran', () => {
    const result = loadBindingFrom(tmp());
    expect(result).toMatchObject({ ok: false, expected: false });
    expect(!result.ok && result.reason).toMatch(/^the native addon was not built \(run `pnpm rebuild @deepen\/backend`/);
  });

  it('names the file and the loader error for a corrupt binary instead of crashing', () => {
    const root = tmp();
    mkdirSync(join(root, 'native', 'build', 'Release'), { recursive: true });
    writeFileSync(join(root, 'native', 'build', 'Release', 'deepen_native.node'), 'not an ELF file');
    const result = loadBindingFrom(root);
    expect(result).toMatchObject({ ok: false, expected: false });
    expect(!result.ok && result.reason).toMatch(/^the native addon failed to load: .*deepen_native\.node/);
  });
});

describe('the install-time build script', () => {
  /** A copy of native/ so the real build folder is never touched. */
  function nativeCopy(): string {
    const root = tmp();
    cpSync(join(packageDir, 'native', 'binding.gyp'), join(root, 'native', 'binding.gyp'));
    cpSync(join(packageDir, 'native', 'src'), join(root, 'native', 'src'), { recursive: true });
    cpSync(join(packageDir, 'native', 'build.mjs'), join(root, 'native', 'build.mjs'));
    return root;
  }

  it('succeeds without a compiler, recording why there is no native engine', () => {
    const root = nativeCopy();
    // A PATH holding only node: no c++, g++, make or python3.
    const bin = join(root, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const run = spawnSync(process.execPath, [join(root, 'native', 'build.mjs')], { encoding: 'utf8', env: { PATH: bin, HOME: root } });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/deepen native engine: not built: no C\+\+ compiler .*deepen will use the next engine \(wasm\)/);
    const status = JSON.parse(readFileSync(join(root, 'native', 'build', 'status.json'), 'utf8'));
    expect(status).toMatchObject({ ok: false, expected: true, reason: 'no C++ compiler (Debian: apt-get install g++ make python3)' });
    expect(loadBindingFrom(root)).toEqual({ ok: false, expected: true, reason: 'not built at install: no C++ compiler (Debian: apt-get install g++ make python3)' });
  });

  it('skips the build when DEEPEN_NATIVE=0', () => {
    const root = nativeCopy();
    const run = spawnSync(process.execPath, [join(root, 'native', 'build.mjs')], { encoding: 'utf8', env: { ...process.env, DEEPEN_NATIVE: '0' } });
    expect(run.status).toBe(0);
    expect(existsSync(join(root, 'native', 'build', 'Release'))).toBe(false);
    expect(loadBindingFrom(root)).toEqual({ ok: false, expected: true, reason: 'not built at install: build skipped because DEEPEN_NATIVE=0' });
  });
});

describe.skipIf(skipNative)(`choosing the native engine${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('is chosen after the tfjs-node engines and before wasm, and reported like them', async () => {
    const report = await initBackend({
      env: {},
      loaders: { 'node-gpu': missing("Cannot find package '@tensorflow/tfjs-node-gpu'"), node: missing("Cannot find package '@tensorflow/tfjs-node'") },
    });
    expect(report.engine).toBe('native');
    expect(report.tfBackend).toBe('deepen-native');
    expect(tf.getBackend()).toBe('deepen-native');
    expect(report.rejected.map((r) => r.engine)).toEqual(['node-gpu', 'node']);
    expect(report.kernels.replaced).toEqual(expect.arrayContaining(['BatchMatMul', 'Softmax', 'DeepenAttention', 'DeepenCrossEntropy', 'UnsortedSegmentSum']));
    expect(report.threads).toBeGreaterThanOrEqual(1);
    const text = formatBackendReport(report);
    expect(text).toMatch(/^engine {5}native \(@deepen\/backend \(native addon\) OpenBLAS/);
    expect(text).toMatch(/C\+\+ kernels, matrix products through OpenBLAS/);
  });

  it('can be asked for by name, and DEEPEN_THREADS sets its thread count', async () => {
    const before = process.env.DEEPEN_THREADS;
    try {
      process.env.DEEPEN_THREADS = '1';
      const report = await initBackend({ engine: 'native' });
      expect(report.threads).toBe(1);
    } finally {
      if (before === undefined) delete process.env.DEEPEN_THREADS;
      else process.env.DEEPEN_THREADS = before;
    }
    const report = await initBackend({ engine: 'native' });
    expect(report.requestedBy).toBe('engine option');
  });
});
