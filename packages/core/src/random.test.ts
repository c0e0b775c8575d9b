import { describe, expect, it } from 'vitest';
import { Rng } from './random.js';

describe('Rng (xoshiro128**)', () => {
  it('matches the reference algorithm on state {1, 2, 3, 4}', () => {
    // Worked by hand from the reference C code: out = rotl(s1 * 5, 7) * 9, then the state update.
    const rng = Rng.fromWords([1, 2, 3, 4]);
    expect([rng.nextUint32(), rng.nextUint32(), rng.nextUint32(), rng.nextUint32()]).toEqual([
      11520, 0, 5927040, 70819200,
    ]);
  });

  it('is deterministic per seed and differs between seeds', () => {
    const a = Rng.fromSeed(42);
    const b = Rng.fromSeed(42);
    const c = Rng.fromSeed(43);
    const seqA = Array.from({ length: 8 }, () => a.nextUint32());
    expect(Array.from({ length: 8 }, () => b.nextUint32())).toEqual(seqA);
    expect(Array.from({ length: 8 }, () => c.nextUint32())).not.toEqual(seqA);
    expect(Rng.fromSeed('run-1').nextUint32()).toBe(Rng.fromSeed('run-1').nextUint32());
    expect(Rng.fromSeed(2 ** 32 + 5).nextUint32()).not.toBe(Rng.fromSeed(5).nextUint32());
  });

  it('resumes exactly from a saved state, including a pending normal deviate', () => {
    const rng = Rng.fromSeed(7);
    rng.normal(); // leaves the second Box–Muller value pending
    const saved = JSON.parse(JSON.stringify(rng.state()));
    const expected = [rng.normal(), rng.float(), rng.int(1000), rng.normal()];
    const resumed = Rng.fromState(saved);
    expect([resumed.normal(), resumed.float(), resumed.int(1000), resumed.normal()]).toEqual(expected);
  });

  it('forks independent streams without advancing the parent', () => {
    const parent = Rng.fromSeed(1);
    const before = parent.state();
    const layer0 = parent.fork('layer.0');
    const layer1 = parent.fork('layer.1');
    expect(parent.state()).toEqual(before);
    expect(layer0.nextUint32()).not.toBe(layer1.nextUint32());
    expect(parent.fork('layer.0').nextUint32()).toBe(Rng.fromSeed(1).fork('layer.0').nextUint32());
  });

  it('draws uniform floats, bounded integers and normals with the right statistics', () => {
    const rng = Rng.fromSeed(123);
    const n = 200_000;
    let sum = 0;
    let sumSq = 0;
    const counts = new Array(10).fill(0);
    for (let i = 0; i < n; i++) {
      const z = rng.normal(2, 3);
      sum += z;
      sumSq += z * z;
      const k = rng.int(10);
      counts[k] += 1;
      const u = rng.float();
      expect(u >= 0 && u < 1).toBe(true);
    }
    const mean = sum / n;
    const std = Math.sqrt(sumSq / n - mean * mean);
    expect(Math.abs(mean - 2)).toBeLessThan(0.03);
    expect(Math.abs(std - 3)).toBeLessThan(0.03);
    for (const c of counts) expect(Math.abs(c / n - 0.1)).toBeLessThan(0.005);
  });

  it('keeps truncated normals inside the bound', () => {
    const rng = Rng.fromSeed(9);
    for (let i = 0; i < 10_000; i++) expect(Math.abs(rng.truncatedNormal(0, 0.02, 2))).toBeLessThanOrEqual(0.04);
  });

  it('shuffles into a permutation, reproducibly', () => {
    const items = Array.from({ length: 100 }, (_, i) => i);
    const shuffled = Rng.fromSeed(5).shuffle([...items]);
    expect(shuffled).not.toEqual(items);
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items);
    expect(Rng.fromSeed(5).shuffle([...items])).toEqual(shuffled);
    const perm = Rng.fromSeed(5).permutation(100);
    expect([...perm].sort((a, b) => a - b)).toEqual(items);
  });

  it('rejects bad seeds, bounds and states with a message', () => {
    expect(() => Rng.fromSeed(1.5)).toThrow(/integer or a string/);
    expect(() => Rng.fromSeed(1).int(0)).toThrow(/Rng.int/);
    expect(() => Rng.fromWords([0, 0, 0, 0])).toThrow(/all-zero/);
    expect(() => Rng.fromState({ algorithm: 'mt19937' } as never)).toThrow(/xoshiro128/);
  });
});
