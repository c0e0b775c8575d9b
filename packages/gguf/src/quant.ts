import { bf16ToFloat32, f16BitsToFloat32, f16ToFloat32, float32ToBf16, float32ToF16, float32ToF16Bits } from '@deepen/core';
import { GgufError, type TensorTypeName } from './format.js';

/**
 * Tensor data in the ggml types deepen writes and reads. Q8_0 follows ggml's reference
 * quantizer (quantize_row_q8_0_ref): blocks of 32 values share one F16 scale
 * d = max|x| / 127, and each value is stored as round(x / d) in an int8, rounded half away from
 * zero as C's roundf does.
 */

export const Q8_0_BLOCK = 32;
const Q8_0_BYTES = 34;

function littleEndian(bits: Uint16Array): Uint8Array {
  // x86 and ARM are little-endian, as GGUF is: the bit patterns' bytes are the file's bytes.
  return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
}

export function quantizeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % Q8_0_BLOCK !== 0) throw new GgufError(`Q8_0 needs a multiple of ${Q8_0_BLOCK} values, got ${values.length}`);
  const blocks = values.length / Q8_0_BLOCK;
  const out = new Uint8Array(blocks * Q8_0_BYTES);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(values[base + j] as number));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const at = b * Q8_0_BYTES;
    view.setUint16(at, float32ToF16Bits(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const x = Math.fround((values[base + j] as number) * id);
      const q = Math.sign(x) * Math.round(Math.abs(x));
      view.setInt8(at + 2 + j, q);
    }
  }
  return out;
}

export function dequantizeQ8_0(bytes: Uint8Array, count: number): Float32Array {
  const blocks = count / Q8_0_BLOCK;
  if (!Number.isInteger(blocks) || bytes.byteLength < blocks * Q8_0_BYTES) throw new GgufError(`Q8_0 data of ${bytes.byteLength} bytes cannot hold ${count} values`);
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < blocks; b++) {
    const at = b * Q8_0_BYTES;
    const d = f16BitsToFloat32(view.getUint16(at, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = view.getInt8(at + 2 + j) * d;
  }
  return out;
}

/** float32 values as the bytes of a ggml tensor of `type`. */
export function encodeTensor(values: Float32Array, type: TensorTypeName): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'F16':
      return littleEndian(float32ToF16(values));
    case 'BF16':
      return littleEndian(float32ToBf16(values));
    case 'Q8_0':
      return quantizeQ8_0(values);
  }
}

/** The bytes of a ggml tensor of `type` as float32 values. */
export function decodeTensor(bytes: Uint8Array, type: TensorTypeName, count: number): Float32Array {
  const aligned = (n: number) => (bytes.byteOffset % n === 0 ? bytes : Uint8Array.from(bytes));
  switch (type) {
    case 'F32': {
      const b = aligned(4);
      return new Float32Array(b.buffer, b.byteOffset, count).slice();
    }
    case 'F16': {
      const b = aligned(2);
      return f16ToFloat32(new Uint16Array(b.buffer, b.byteOffset, count));
    }
    case 'BF16': {
      const b = aligned(2);
      return bf16ToFloat32(new Uint16Array(b.buffer, b.byteOffset, count));
    }
    case 'Q8_0':
      return dequantizeQ8_0(bytes, count);
  }
}
