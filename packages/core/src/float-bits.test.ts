import { describe, expect, it } from 'vitest';
import {
  bf16BitsToFloat32,
  bf16ToFloat32,
  f16BitsToFloat32,
  f16ToFloat32,
  float32ToBf16,
  float32ToBf16Bits,
  float32ToF16,
  float32ToF16Bits,
} from './float-bits.js';

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0] as number;

describe('float16 (IEEE binary16)', () => {
  it('encodes hand-checked values', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest finite half
      [65519.99, 0x7bff], // rounds down below the halfway point to infinity
      [65520, 0x7c00], // halfway to 2^16 rounds (to even) to infinity
      [1e6, 0x7c00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // exact tie between 0 and 2^-24: to even, i.e. zero
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal units: to even
      [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: to even
      [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9: to even
      [f32(0x3dcccccd), 0x2e66], // 0.1
      [2 ** -14 - 2 ** -25, 0x0400], // largest subnormal rounds up into the normals
    ];
    for (const [value, bits] of cases) expect(float32ToF16Bits(value), `f16 of ${value}`).toBe(bits);
    expect(float32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(float32ToF16Bits(NaN) & 0x03ff).not.toBe(0);
  });

  it('decodes every one of the 65,536 patterns and re-encodes it to itself', () => {
    for (let h = 0; h < 65536; h++) {
      const value = f16BitsToFloat32(h);
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x03ff) !== 0;
      if (isNaN) expect(Number.isNaN(value)).toBe(true);
      else expect(float32ToF16Bits(value), `pattern 0x${h.toString(16)}`).toBe(h);
    }
    expect(f16BitsToFloat32(0x3555)).toBeCloseTo(0.33325195, 8);
    expect(f16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(Object.is(f16BitsToFloat32(0x8000), -0)).toBe(true);
  });

  it('round trips arrays within half precision (relative error <= 2^-11)', () => {
    const values = new Float32Array(10_000).map((_, i) => Math.sin(i * 0.37) * 10 ** ((i % 9) - 4));
    const back = f16ToFloat32(float32ToF16(values));
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as number;
      if (Math.abs(v) < 2 ** -14) expect(Math.abs((back[i] as number) - v)).toBeLessThanOrEqual(2 ** -25);
      else expect(Math.abs((back[i] as number) - v) / Math.abs(v)).toBeLessThanOrEqual(2 ** -11);
    }
  });
});

describe('bfloat16', () => {
  it('encodes hand-checked values with round to nearest even', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3f80],
      [-1, 0xbf80],
      [f32(0x3dcccccd), 0x3dcd], // 0.1
      [f32(0x40490fdb), 0x4049], // pi
      [f32(0x3f808000), 0x3f80], // 1 + 2^-8: tie, stays even
      [f32(0x3f818000), 0x3f82], // 1 + 3*2^-8: tie, rounds up to even
      [f32(0x3f808001), 0x3f81], // just above the tie
      [f32(0x7f7fffff), 0x7f80], // float32 max rounds to infinity
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
    ];
    for (const [value, bits] of cases) expect(float32ToBf16Bits(value), `bf16 of ${value}`).toBe(bits);
    const nan = float32ToBf16Bits(NaN);
    expect(Number.isNaN(bf16BitsToFloat32(nan))).toBe(true);
    // A NaN whose payload sits only in the low 16 bits must not become infinity.
    expect(Number.isNaN(bf16BitsToFloat32(float32ToBf16Bits(f32(0x7f800001))))).toBe(true);
  });

  it('decodes every pattern exactly and re-encodes it to itself', () => {
    for (let b = 0; b < 65536; b++) {
      const value = bf16BitsToFloat32(b);
      if (Number.isNaN(value)) continue;
      expect(float32ToBf16Bits(value)).toBe(b);
    }
  });

  it('array conversions agree with the scalar ones and stay within bf16 precision', () => {
    const values = new Float32Array(4096).map((_, i) => (i - 2048) * 0.0173 + Math.cos(i));
    values[7] = NaN;
    const bits = float32ToBf16(values);
    const back = bf16ToFloat32(bits);
    for (let i = 0; i < values.length; i++) {
      expect(bits[i]).toBe(float32ToBf16Bits(values[i] as number));
      const v = values[i] as number;
      if (Number.isNaN(v)) expect(Number.isNaN(back[i])).toBe(true);
      else expect(Math.abs((back[i] as number) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8);
    }
  });
});
