import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { writeFileDurableStream } from '@deepen/core';

/**
 * The GGUF container (llama.cpp's model file, version 3): a header of typed key/value metadata
 * and tensor descriptions, then the tensors' data, each aligned. Written and read by hand
 * because no maintained npm library writes GGUF (the `@huggingface/gguf` package only reads
 * headers, and node-llama-cpp reads through llama.cpp); the format is small and fixed by
 * llama.cpp's gguf.h, whose facts this module follows.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf_type). */
export const VALUE_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;
export type ValueTypeName = (typeof VALUE_TYPES)[number];
export type ScalarTypeName = Exclude<ValueTypeName, 'array'>;

/** A metadata value with its GGUF type (the type decides the bytes, so it is kept explicit). */
export type GgufValue =
  | { type: Exclude<ScalarTypeName, 'string' | 'bool' | 'u64' | 'i64'>; value: number }
  | { type: 'u64' | 'i64'; value: number | bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: ScalarTypeName; value: ReadonlyArray<number | bigint | boolean | string> };

export const u32 = (value: number): GgufValue => ({ type: 'u32', value });
export const i32 = (value: number): GgufValue => ({ type: 'i32', value });
export const f32 = (value: number): GgufValue => ({ type: 'f32', value });
export const bool = (value: boolean): GgufValue => ({ type: 'bool', value });
export const str = (value: string): GgufValue => ({ type: 'string', value });
export const arr = (itemType: ScalarTypeName, value: ReadonlyArray<number | bigint | boolean | string>): GgufValue => ({ type: 'array', itemType, value });

/**
 * ggml tensor types by id (ggml.h's enum ggml_type). Ids 4, 5 and 31-33, 36-38 were removed
 * from ggml; they stay unnamed here.
 */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K',
  16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16',
  34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};

/** The tensor types deepen reads and writes, with their ggml id and block geometry. */
export const TENSOR_TYPES = {
  F32: { id: 0, blockSize: 1, blockBytes: 4 },
  F16: { id: 1, blockSize: 1, blockBytes: 2 },
  Q8_0: { id: 8, blockSize: 32, blockBytes: 34 },
  BF16: { id: 30, blockSize: 1, blockBytes: 2 },
} as const;
export type TensorTypeName = keyof typeof TENSOR_TYPES;

const TYPE_BY_ID = new Map<number, TensorTypeName>(Object.entries(TENSOR_TYPES).map(([name, t]) => [t.id, name as TensorTypeName]));

/** llama.cpp's general.file_type (llama_ftype) for files whose big tensors are all of one type. */
export const FILE_TYPES: Readonly<Record<TensorTypeName, number>> = { F32: 0, F16: 1, Q8_0: 7, BF16: 32 };

export class GgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufError';
  }
}

/** Bytes of a tensor of `type` with these dims (ne order: dims[0] is the contiguous row). */
export function tensorBytes(type: TensorTypeName, dims: readonly number[]): number {
  const t = TENSOR_TYPES[type];
  const row = dims[0] ?? 1;
  if (row % t.blockSize !== 0) throw new GgufError(`a ${type} tensor needs rows that are a multiple of ${t.blockSize} values, got ${row}`);
  const elements = dims.reduce((a, b) => a * b, 1);
  return (elements / t.blockSize) * t.blockBytes;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** A tensor to write: its dims in ggml order (ne[0] first: the length of a row) and its bytes, produced when written. */
export interface GgufTensorToWrite {
  name: string;
  dims: readonly number[];
  type: TensorTypeName;
  data: () => Uint8Array;
}

class ByteSink {
  private chunks: Uint8Array[] = [];
  private current = Buffer.alloc(1 << 16);
  private used = 0;
  length = 0;

  private room(n: number): void {
    if (this.used + n <= this.current.length) return;
    this.flushCurrent();
    if (n > this.current.length) this.current = Buffer.alloc(n);
  }
  private flushCurrent(): void {
    if (this.used > 0) this.chunks.push(Buffer.from(this.current.subarray(0, this.used)));
    this.used = 0;
  }
  u8(v: number): void { this.room(1); this.current.writeUInt8(v, this.used); this.used += 1; this.length += 1; }
  i8(v: number): void { this.room(1); this.current.writeInt8(v, this.used); this.used += 1; this.length += 1; }
  u16(v: number): void { this.room(2); this.current.writeUInt16LE(v, this.used); this.used += 2; this.length += 2; }
  i16(v: number): void { this.room(2); this.current.writeInt16LE(v, this.used); this.used += 2; this.length += 2; }
  u32(v: number): void { this.room(4); this.current.writeUInt32LE(v, this.used); this.used += 4; this.length += 4; }
  i32(v: number): void { this.room(4); this.current.writeInt32LE(v, this.used); this.used += 4; this.length += 4; }
  f32(v: number): void { this.room(4); this.current.writeFloatLE(v, this.used); this.used += 4; this.length += 4; }
  f64(v: number): void { this.room(8); this.current.writeDoubleLE(v, this.used); this.used += 8; this.length += 8; }
  u64(v: number | bigint): void { this.room(8); this.current.writeBigUInt64LE(BigInt(v), this.used); this.used += 8; this.length += 8; }
  i64(v: number | bigint): void { this.room(8); this.current.writeBigInt64LE(BigInt(v), this.used); this.used += 8; this.length += 8; }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.room(bytes.length);
    bytes.copy(this.current, this.used);
    this.used += bytes.length;
    this.length += bytes.length;
  }
  pad(alignment: number): void {
    while (this.length % alignment !== 0) this.u8(0);
  }
  take(): Uint8Array[] {
    this.flushCurrent();
    const out = this.chunks;
    this.chunks = [];
    return out;
  }
}

function writeScalar(sink: ByteSink, type: ScalarTypeName, value: number | bigint | boolean | string, key: string): void {
  const number = () => {
    if (typeof value !== 'number') throw new GgufError(`metadata ${key}: expected a number for type ${type}, got ${typeof value}`);
    return value;
  };
  switch (type) {
    case 'u8': return sink.u8(number());
    case 'i8': return sink.i8(number());
    case 'u16': return sink.u16(number());
    case 'i16': return sink.i16(number());
    case 'u32': return sink.u32(number());
    case 'i32': return sink.i32(number());
    case 'f32': return sink.f32(number());
    case 'f64': return sink.f64(number());
    case 'u64': return sink.u64(value as number | bigint);
    case 'i64': return sink.i64(value as number | bigint);
    case 'bool': return sink.u8(value ? 1 : 0);
    case 'string':
      if (typeof value !== 'string') throw new GgufError(`metadata ${key}: expected a string, got ${typeof value}`);
      return sink.string(value);
  }
}

/**
 * Writes a GGUF file atomically: into a temporary sibling, fsynced, then renamed over `path`,
 * so a failure (or a refusal raised while a tensor is produced) leaves nothing half-written.
 * Tensors are produced one at a time, so the file is never held in memory whole.
 */
export async function writeGguf(path: string, metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensorToWrite[]): Promise<number> {
  const alignment = GGUF_DEFAULT_ALIGNMENT;
  const keys = new Set<string>();
  for (const [key] of metadata) {
    if (keys.has(key)) throw new GgufError(`metadata key ${key} is given twice`);
    keys.add(key);
  }
  const names = new Set<string>();
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`tensor ${t.name} is given twice`);
    names.add(t.name);
    offsets.push(offset);
    offset += tensorBytes(t.type, t.dims);
    offset = Math.ceil(offset / alignment) * alignment;
  }

  const header = new ByteSink();
  header.u32(GGUF_MAGIC);
  header.u32(GGUF_VERSION);
  header.u64(tensors.length);
  header.u64(metadata.length);
  for (const [key, v] of metadata) {
    header.string(key);
    header.u32(VALUE_TYPES.indexOf(v.type));
    if (v.type === 'array') {
      header.u32(VALUE_TYPES.indexOf(v.itemType));
      header.u64(v.value.length);
      for (const item of v.value) writeScalar(header, v.itemType, item, key);
    } else {
      writeScalar(header, v.type, v.value, key);
    }
  }
  tensors.forEach((t, i) => {
    header.string(t.name);
    header.u32(t.dims.length);
    for (const d of t.dims) header.u64(d);
    header.u32(TENSOR_TYPES[t.type].id);
    header.u64(offsets[i] as number);
  });
  header.pad(alignment);
  const headerBytes = header.length;

  await writeFileDurableStream(path, (write) => {
    for (const chunk of header.take()) write(chunk);
    let written = 0;
    tensors.forEach((t, i) => {
      const data = t.data();
      const want = tensorBytes(t.type, t.dims);
      if (data.byteLength !== want) throw new GgufError(`tensor ${t.name}: produced ${data.byteLength} bytes, its ${t.type} [${t.dims}] needs ${want}`);
      const start = offsets[i] as number;
      if (start > written) write(new Uint8Array(start - written));
      write(data);
      written = start + data.byteLength;
    });
    if (offset > written) write(new Uint8Array(offset - written));
  });
  return headerBytes + offset;
}

// ---------------------------------------------------------------------------------------------
// Reading

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is the length of a row. */
  dims: number[];
  /** ggml type id, and its name where ggml has one. */
  typeId: number;
  typeName: string;
  /** Absolute byte offset of the data in the file. */
  offset: number;
}

export interface GgufFile {
  path: string;
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  fileBytes: number;
}

/** Reads the header of a file through a growing window, so a large file is never read whole. */
class HeaderReader {
  private buffer = Buffer.alloc(0);
  private start = 0;
  pos = 0;

  constructor(
    private readonly fd: number,
    private readonly size: number,
    private readonly path: string,
  ) {}

  private need(n: number, what: string): void {
    if (this.pos + n <= this.start + this.buffer.length) return;
    if (this.pos + n > this.size) throw new GgufError(`${this.path}: truncated GGUF header: ${what} at byte ${this.pos} runs past the end of the file (${this.size} bytes)`);
    const length = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
    const buffer = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const r = readSync(this.fd, buffer, got, length - got, this.pos + got);
      if (r === 0) break;
      got += r;
    }
    this.buffer = buffer.subarray(0, got);
    this.start = this.pos;
    if (got < n) throw new GgufError(`${this.path}: truncated GGUF header: ${what} at byte ${this.pos}`);
  }
  /** Moves past n bytes and returns their index in the (possibly reloaded) window: call it before touching `buffer`. */
  private at(n: number, what: string): number {
    this.need(n, what);
    const i = this.pos - this.start;
    this.pos += n;
    return i;
  }
  u8(what: string): number { const i = this.at(1, what); return this.buffer.readUInt8(i); }
  i8(what: string): number { const i = this.at(1, what); return this.buffer.readInt8(i); }
  u16(what: string): number { const i = this.at(2, what); return this.buffer.readUInt16LE(i); }
  i16(what: string): number { const i = this.at(2, what); return this.buffer.readInt16LE(i); }
  u32(what: string): number { const i = this.at(4, what); return this.buffer.readUInt32LE(i); }
  i32(what: string): number { const i = this.at(4, what); return this.buffer.readInt32LE(i); }
  f32(what: string): number { const i = this.at(4, what); return this.buffer.readFloatLE(i); }
  f64(what: string): number { const i = this.at(8, what); return this.buffer.readDoubleLE(i); }
  u64big(what: string): bigint { const i = this.at(8, what); return this.buffer.readBigUInt64LE(i); }
  i64big(what: string): bigint { const i = this.at(8, what); return this.buffer.readBigInt64LE(i); }
  /** A u64 that must fit a JavaScript number and stay below `limit`. */
  count(what: string, limit: number): number {
    const v = this.u64big(what);
    if (v > BigInt(limit)) throw new GgufError(`${this.path}: ${what} is ${v}, impossible in a file of ${this.size} bytes (corrupt header?)`);
    return Number(v);
  }
  string(what: string): string {
    const length = this.u64big(`length of ${what}`);
    if (length > BigInt(this.size - this.pos)) throw new GgufError(`${this.path}: truncated GGUF header: ${what} (${length} bytes) at byte ${this.pos} runs past the end of the file (${this.size} bytes)`);
    const n = Number(length);
    const i = this.at(n, what);
    return this.buffer.toString('utf8', i, i + n);
  }
}

function readScalar(r: HeaderReader, type: ScalarTypeName, what: string): number | bigint | boolean | string {
  switch (type) {
    case 'u8': return r.u8(what);
    case 'i8': return r.i8(what);
    case 'u16': return r.u16(what);
    case 'i16': return r.i16(what);
    case 'u32': return r.u32(what);
    case 'i32': return r.i32(what);
    case 'f32': return r.f32(what);
    case 'f64': return r.f64(what);
    case 'bool': return r.u8(what) !== 0;
    case 'string': return r.string(what);
    case 'u64': {
      const v = r.u64big(what);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case 'i64': {
      const v = r.i64big(what);
      return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
    }
  }
}

function valueType(id: number, path: string, where: string): ValueTypeName {
  const name = VALUE_TYPES[id];
  if (name === undefined) throw new GgufError(`${path}: ${where} has unknown value type ${id}`);
  return name;
}

/** Reads and checks a GGUF file's header: metadata and tensor descriptions (not the data). */
export function readGguf(path: string): GgufFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new GgufError(`${path}: cannot open (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    const size = fstatSync(fd).size;
    const r = new HeaderReader(fd, size, path);
    if (size < 4 || r.u32('magic') !== GGUF_MAGIC) throw new GgufError(`${path}: not a GGUF file (it does not start with "GGUF")`);
    const version = r.u32('version');
    if (version !== 2 && version !== 3) throw new GgufError(`${path}: GGUF version ${version} is not supported (deepen reads versions 2 and 3)`);
    const tensorCount = r.count('tensor count', size);
    const kvCount = r.count('metadata count', size);
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      const key = r.string(`metadata key ${i}`);
      const type = valueType(r.u32(`type of ${key}`), path, `metadata ${key}`);
      if (type === 'array') {
        const itemType = valueType(r.u32(`item type of ${key}`), path, `metadata ${key}`);
        if (itemType === 'array') throw new GgufError(`${path}: metadata ${key} is an array of arrays, which deepen does not read`);
        const n = r.count(`length of ${key}`, size);
        const items: Array<number | bigint | boolean | string> = new Array(n);
        for (let j = 0; j < n; j++) items[j] = readScalar(r, itemType, `${key}[${j}]`);
        metadata.set(key, { type: 'array', itemType, value: items });
      } else {
        metadata.set(key, { type, value: readScalar(r, type, key) } as GgufValue);
      }
    }
    const alignmentValue = metadata.get('general.alignment');
    const alignment = alignmentValue ? Number(alignmentValue.value) : GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) throw new GgufError(`${path}: general.alignment ${alignment} is not a power of two`);
    const infos: Array<Omit<GgufTensorInfo, 'offset'> & { relative: number }> = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = r.string(`tensor name ${i}`);
      const nDims = r.u32(`dimension count of ${name}`);
      if (nDims < 1 || nDims > 4) throw new GgufError(`${path}: tensor ${name} has ${nDims} dimensions (GGUF allows 1 to 4)`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(r.count(`dimension ${d} of ${name}`, size * 32));
      const typeId = r.u32(`type of ${name}`);
      const relative = r.count(`offset of ${name}`, size);
      infos.push({ name, dims, typeId, typeName: GGML_TYPE_NAMES[typeId] ?? `unknown type ${typeId}`, relative });
    }
    const dataStart = Math.ceil(r.pos / alignment) * alignment;
    const tensors: GgufTensorInfo[] = infos.map(({ relative, ...t }) => {
      if (relative % alignment !== 0) throw new GgufError(`${path}: tensor ${t.name}'s data offset ${relative} is not aligned to ${alignment}`);
      const offset = dataStart + relative;
      const type = TYPE_BY_ID.get(t.typeId);
      if (type) {
        const end = offset + tensorBytes(type, t.dims);
        if (end > size) throw new GgufError(`${path}: truncated: tensor ${t.name}'s data ends at byte ${end}, the file has ${size} bytes`);
      } else if (offset > size) {
        throw new GgufError(`${path}: truncated: tensor ${t.name}'s data starts at byte ${offset}, the file has ${size} bytes`);
      }
      return { ...t, offset };
    });
    return { path, version, metadata, tensors, alignment, fileBytes: size };
  } finally {
    closeSync(fd);
  }
}

/** The raw bytes of one tensor (only for the types deepen reads; others are refused by name). */
export function readTensorBytes(file: GgufFile, tensor: GgufTensorInfo): Uint8Array {
  const type = TYPE_BY_ID.get(tensor.typeId);
  if (!type) throw new GgufError(`${file.path}: tensor ${tensor.name} is ${tensor.typeName}, which deepen does not read (it reads ${Object.keys(TENSOR_TYPES).join(', ')})`);
  const n = tensorBytes(type, tensor.dims);
  const out = Buffer.alloc(n);
  const fd = openSync(file.path, 'r');
  try {
    let got = 0;
    while (got < n) {
      const r = readSync(fd, out, got, n - got, tensor.offset + got);
      if (r === 0) throw new GgufError(`${file.path}: truncated: tensor ${tensor.name} ends early`);
      got += r;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** A tensor's type name as deepen reads it, or null when deepen does not read that type. */
export function readableType(tensor: GgufTensorInfo): TensorTypeName | null {
  return TYPE_BY_ID.get(tensor.typeId) ?? null;
}

/** A metadata value, checked: `kind` says what JavaScript type it must have. */
export function metaValue(file: GgufFile, key: string, kind: 'number'): number | undefined;
export function metaValue(file: GgufFile, key: string, kind: 'string'): string | undefined;
export function metaValue(file: GgufFile, key: string, kind: 'boolean'): boolean | undefined;
export function metaValue(file: GgufFile, key: string, kind: 'array'): ReadonlyArray<number | bigint | boolean | string> | undefined;
export function metaValue(file: GgufFile, key: string, kind: 'number' | 'string' | 'boolean' | 'array'): unknown {
  const v = file.metadata.get(key);
  if (v === undefined) return undefined;
  const ok = kind === 'array' ? v.type === 'array' : typeof v.value === kind;
  if (!ok) throw new GgufError(`${file.path}: metadata ${key} is a ${v.type}, expected a ${kind}`);
  return v.value;
}
