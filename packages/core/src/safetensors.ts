import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { bf16ToFloat32, f16ToFloat32, float32ToBf16, float32ToF16 } from './float-bits.js';

/** dtypes of the safetensors format, with their element sizes in bytes. */
export const DTYPE_BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 } as const;
export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** The float formats deepen writes. */
export type StorageDtype = 'F32' | 'F16' | 'BF16';

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** The raw little-endian bytes (a view into the file's buffer). */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

/** A safetensors file is malformed; the message names the file and, where it applies, the tensor. */
export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

const MAX_HEADER = 100 * 1024 * 1024;

/** One tensor's entry in a safetensors header: where its bytes lie in the data section. */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range within the data section (which starts after the 8-byte length and the header). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file. */
  dataStart: number;
  /** Bytes of tensor data the header describes. */
  dataLength: number;
}

/** The header length from the first 8 bytes, checked against the file size. */
function headerLengthOf(prefix: Uint8Array, fileSize: number, fail: (why: string) => Error): number {
  if (fileSize < 8) throw fail(`file is ${fileSize} bytes, too short for a safetensors header (truncated?)`);
  const headerLength = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  if (headerLength > MAX_HEADER || 8 + headerLength > fileSize) {
    throw fail(`header length ${headerLength} exceeds the file size ${fileSize} (truncated or not a safetensors file)`);
  }
  return headerLength;
}

/**
 * Validates a header's JSON against the size of the file it came from: dtypes, shapes, that
 * each tensor's byte count matches its shape, and that the data offsets are contiguous and
 * cover the data section exactly (a truncated or padded file fails here, before any use).
 */
function parseHeaderJson(headerBytes: Uint8Array, fileSize: number, fail: (why: string) => Error): SafetensorsHeader {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw fail(`header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw fail('header is not a JSON object');
  const dataStart = 8 + headerBytes.byteLength;
  const dataLength = fileSize - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = entry?.dtype as SafetensorsDtype;
    if (!(typeof dtype === 'string' && dtype in DTYPE_BYTES)) throw fail(`tensor ${name}: unsupported dtype ${JSON.stringify(entry?.dtype)}`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(`tensor ${name}: invalid shape ${JSON.stringify(shape)}`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0) || offsets[1] < offsets[0]) {
      throw fail(`tensor ${name}: invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const expectedBytes = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    if (end - begin !== expectedBytes) throw fail(`tensor ${name}: ${end - begin} bytes of data for shape [${shape}] ${dtype}, expected ${expectedBytes}`);
    if (end > dataLength) throw fail(`tensor ${name}: data ends at byte ${end} but the data section has ${dataLength} bytes (truncated file)`);
    entries.set(name, { dtype, shape: shape as number[], begin, end });
  }
  const spans = [...entries].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let cursor = 0;
  for (const [name, { begin, end }] of spans) {
    if (begin !== cursor) throw fail(`tensor ${name}: data starts at byte ${begin}, expected ${cursor} (offsets must be contiguous without overlap)`);
    cursor = end;
  }
  if (cursor !== dataLength) throw fail(`data section has ${dataLength} bytes but the tensors cover ${cursor}`);
  return { entries, metadata, dataStart, dataLength };
}

/** Parses and validates the header of a whole safetensors file held in memory. */
export function parseSafetensorsHeader(buffer: Uint8Array, file: string): SafetensorsHeader {
  const fail = (why: string) => new SafetensorsError(`${file}: ${why}`);
  const headerLength = headerLengthOf(buffer, buffer.byteLength, fail);
  return parseHeaderJson(buffer.subarray(8, 8 + headerLength), buffer.byteLength, fail);
}

/**
 * Reads and validates only the header of a safetensors file on disk (the data is not read),
 * checking it against the file's size.
 */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fail = (why: string) => new SafetensorsError(`${path}: ${why}`);
  const size = statSync(path).size;
  const fd = openSync(path, 'r');
  try {
    const prefix = new Uint8Array(8);
    if (size >= 8) readSync(fd, prefix, 0, 8, 0);
    const headerLength = headerLengthOf(prefix, size, fail);
    const header = new Uint8Array(headerLength);
    let read = 0;
    while (read < headerLength) {
      const n = readSync(fd, header, read, headerLength - read, 8 + read);
      if (n === 0) throw fail('file ended inside its header');
      read += n;
    }
    return parseHeaderJson(header, size, fail);
  } finally {
    closeSync(fd);
  }
}

/**
 * Parses and validates a whole safetensors file: header length, JSON, dtypes, shapes, and
 * that the data offsets are contiguous and cover the data section exactly.
 */
export function parseSafetensors(buffer: Uint8Array, file: string): SafetensorsFile {
  const header = parseSafetensorsHeader(buffer, file);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, e] of header.entries) {
    tensors.set(name, { dtype: e.dtype, shape: e.shape, bytes: buffer.subarray(header.dataStart + e.begin, header.dataStart + e.end) });
  }
  return { tensors, metadata: header.metadata };
}

export interface SafetensorsSummary {
  parameters: number;
  dtypes: SafetensorsDtype[];
  tensors: number;
}

/** Tensor count, parameter count and dtypes of a safetensors file, from its validated header alone. */
export function summarizeSafetensors(path: string): SafetensorsSummary {
  const { entries } = readSafetensorsHeader(path);
  let parameters = 0;
  const dtypes = new Set<SafetensorsDtype>();
  for (const e of entries.values()) {
    parameters += e.shape.reduce((a, b) => a * b, 1);
    dtypes.add(e.dtype);
  }
  return { parameters, dtypes: [...dtypes].sort(), tensors: entries.size };
}

function aligned(bytes: Uint8Array, size: number): ArrayBuffer {
  // Typed array views need an offset that is a multiple of the element size; copy when not.
  // (new Uint8Array(x) copies; Buffer#slice would return a view of the whole file.)
  return bytes.byteOffset % size === 0 ? (bytes.buffer as ArrayBuffer) : (new Uint8Array(bytes).buffer as ArrayBuffer);
}

function view<T>(bytes: Uint8Array, size: number, Ctor: new (b: ArrayBuffer, o: number, l: number) => T): T {
  const buf = aligned(bytes, size);
  const offset = buf === bytes.buffer ? bytes.byteOffset : 0;
  return new Ctor(buf, offset, bytes.byteLength / size);
}

/** Decodes a floating-point tensor to float32 values (a copy). */
export function tensorToFloat32(t: SafetensorsTensor, where: string): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return view(t.bytes, 4, Float32Array).slice();
    case 'F16':
      return f16ToFloat32(view(t.bytes, 2, Uint16Array));
    case 'BF16':
      return bf16ToFloat32(view(t.bytes, 2, Uint16Array));
    case 'F64':
      return Float32Array.from(view(t.bytes, 8, Float64Array));
    default:
      throw new SafetensorsError(`${where}: dtype ${t.dtype} is not a floating-point type`);
  }
}

/** Encodes float32 values in a storage dtype, as little-endian bytes. */
export function encodeFloat32(values: Float32Array, dtype: StorageDtype): Uint8Array {
  const encoded = dtype === 'F32' ? values : dtype === 'F16' ? float32ToF16(values) : float32ToBf16(values);
  return new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
}

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * Serialises tensors (sorted by name, as the reference implementation does) into the chunks
 * of one safetensors file: header length, padded JSON header, then the data.
 */
export function serializeSafetensors(tensors: TensorToWrite[], metadata: Record<string, string> = {}): Uint8Array[] {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of sorted) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  const raw = new TextEncoder().encode(json);
  json += ' '.repeat((8 - (raw.byteLength % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const lengthBytes = new Uint8Array(8);
  new DataView(lengthBytes.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  return [lengthBytes, headerBytes, ...sorted.map((t) => t.bytes)];
}
