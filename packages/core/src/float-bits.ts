/**
 * Conversions between float32 values and the 16-bit float formats checkpoints use.
 * Encoding rounds to nearest, ties to even (as PyTorch and numpy do), keeps the sign of
 * zero, maps overflow to infinity and keeps NaN a NaN. The functions work on bit patterns
 * (Uint16Array) so callers decide the byte order of their files.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bitsOf(value: number): number {
  f32[0] = value;
  return u32[0] as number;
}

/** bfloat16 bit pattern of a float32 value. */
export function float32ToBf16Bits(value: number): number {
  const bits = bitsOf(value);
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff; // quiet NaN, sign kept
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

/** float32 value of a bfloat16 bit pattern (exact). */
export function bf16BitsToFloat32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0] as number;
}

/** IEEE binary16 bit pattern of a float32 value. */
export function float32ToF16Bits(value: number): number {
  const bits = bitsOf(value);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;

  if (exponent === 0xff) return mantissa !== 0 ? sign | 0x7e00 | (mantissa >>> 13) : sign | 0x7c00;
  const e = exponent - 127 + 15; // re-biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // too large: infinity
  if (e <= 0) {
    // Subnormal in half precision (or zero). Below 2^-25 everything rounds to zero.
    if (e < -10) return sign;
    const full = mantissa | 0x800000; // restore the implicit leading one
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = full & ((1 << shift) - 1);
    let m = full >>> shift;
    if (rest > half || (rest === half && (m & 1) === 1)) m += 1; // may carry into the smallest normal
    return sign | m;
  }
  let h = sign | (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // a carry may round up to infinity
  return h;
}

let f16Table: Float32Array | null = null;

/** All 65,536 half-precision values, built once: decoding is then a table look-up. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 0x1f) table[h] = mantissa === 0 ? sign * Infinity : NaN;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  f16Table = table;
  return table;
}

/** float32 value of an IEEE binary16 bit pattern (exact). */
export function f16BitsToFloat32(bits: number): number {
  return halfTable()[bits & 0xffff] as number;
}

/** Encodes a whole float32 array as bfloat16 bit patterns. */
export function float32ToBf16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) {
    const bits = words[i] as number;
    out[i] =
      (bits & 0x7fffffff) > 0x7f800000
        ? ((bits >>> 16) | 0x0040) & 0xffff
        : ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** Decodes bfloat16 bit patterns into float32 values. */
export function bf16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const words = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) words[i] = (bits[i] as number) << 16;
  return out;
}

/** Encodes a whole float32 array as IEEE binary16 bit patterns. */
export function float32ToF16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToF16Bits(values[i] as number);
  return out;
}

/** Decodes IEEE binary16 bit patterns into float32 values. */
export function f16ToFloat32(bits: Uint16Array): Float32Array {
  const table = halfTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i] as number] as number;
  return out;
}
