import { describe, expect, it } from 'vitest';
import { explainLoadFailure } from './load-errors.js';

function withCode(message: string, code: string) {
  return Object.assign(new Error(message), { code });
}

describe('explainLoadFailure', () => {
  const pkg = '@tensorflow/tfjs-node-gpu';
  it('says when the package is not installed', () => {
    expect(explainLoadFailure(pkg, withCode(`Cannot find package '${pkg}' imported from /x.js`, 'ERR_MODULE_NOT_FOUND'))).toBe(
      `not installed: the npm package ${pkg} is missing`,
    );
    expect(explainLoadFailure(pkg, withCode(`Cannot find module '${pkg}'`, 'MODULE_NOT_FOUND'))).toMatch(/not installed/);
  });

  it('names the missing CUDA library', () => {
    const error = new Error('libcudart.so.11.0: cannot open shared object file: No such file or directory');
    expect(explainLoadFailure(pkg, error)).toMatch(/^CUDA libraries missing: libcudart\.so\.11\.0 cannot be loaded/);
    expect(explainLoadFailure(pkg, new Error('libcudnn.so.8: cannot open shared object file'))).toMatch(/libcudnn\.so\.8/);
  });

  it('recognises the missing native addon that a failed install step leaves', () => {
    const error = new Error('The Node.js native addon module (tfjs_binding.node) can not be found at path: /a/b/tfjs_binding.node.');
    expect(explainLoadFailure(pkg, error)).toMatch(/^native addon missing: .*install step did not build or download libtensorflow .*tfjs_binding\.node\) can not be found/);
  });

  it('recognises a libtensorflow or other shared-library failure', () => {
    expect(explainLoadFailure(pkg, new Error('libtensorflow.so.2: cannot open shared object file'))).toMatch(/^libtensorflow cannot be loaded/);
    expect(explainLoadFailure(pkg, new Error('/lib/libc.so.6: version `GLIBC_2.38` not found'))).toMatch(/^native library cannot be loaded/);
  });

  it('falls back to the first line of anything else', () => {
    expect(explainLoadFailure(pkg, new Error('boom\nstack'))).toBe('failed to load: boom');
    expect(explainLoadFailure(pkg, 'weird')).toBe('failed to load: weird');
  });
});
