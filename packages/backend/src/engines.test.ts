import { describe, expect, it } from 'vitest';
import { blasCoreHint } from './engines.js';

describe('blasCoreHint', () => {
  it('names the core type to try when OpenBLAS falls back to generic kernels on a wider CPU', () => {
    expect(blasCoreHint('Prescott', 'avx512')).toEqual([
      'OpenBLAS does not know this CPU and runs its generic Prescott kernels although the CPU has AVX-512; OPENBLAS_CORETYPE=SkylakeX is usually much faster',
    ]);
    expect(blasCoreHint('Nehalem', 'avx2')[0]).toContain('OPENBLAS_CORETYPE=Haswell');
  });

  it('says nothing when OpenBLAS runs kernels made for the CPU, or the CPU has nothing wider', () => {
    expect(blasCoreHint('SkylakeX', 'avx512')).toEqual([]);
    expect(blasCoreHint('Haswell', 'avx2')).toEqual([]);
    expect(blasCoreHint('Zen', 'avx512')).toEqual([]);
    expect(blasCoreHint('Prescott', 'baseline')).toEqual([]);
  });
});
