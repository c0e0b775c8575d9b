import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  arr,
  bool,
  decodeTensor,
  dequantizeQ8_0,
  encodeTensor,
  exportGguf,
  f32,
  GgufError,
  i32,
  permuteRotaryRows,
  quantizeQ8_0,
  readGguf,
  readGgufModel,
  readTensorBytes,
  str,
  u32,
  writeGguf,
  type GgufValue,
} from '../src/index.js';
import { fixtureModel, tempDir, tokenizer } from './fixtures.js';

const dir = tempDir();

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

describe('the GGUF container', () => {
  it('writes and reads back every metadata type, tensor descriptions and aligned data', async () => {
    const path = join(dir, 'all.gguf');
    const a = Float32Array.from({ length: 64 }, (_, i) => i / 7 - 3);
    const b = Float32Array.from({ length: 6 }, (_, i) => i + 0.5);
    await writeGguf(
      path,
      [
        ['u8', { type: 'u8', value: 200 }],
        ['i8', { type: 'i8', value: -100 }],
        ['u16', { type: 'u16', value: 65000 }],
        ['i16', { type: 'i16', value: -32000 }],
        ['u32', u32(4_000_000_000)],
        ['i32', i32(-2_000_000_000)],
        ['f32', f32(0.25)],
        ['f64', { type: 'f64', value: Math.PI }],
        ['u64', { type: 'u64', value: 2n ** 60n }],
        ['i64', { type: 'i64', value: -5 }],
        ['bool', bool(true)],
        ['string', str('grüße 🚀')],
        ['strings', arr('string', ['a', '', 'ç'])],
        ['ints', arr('i32', [1, -2, 3])],
      ],
      [
        { name: 'a', dims: [32, 2], type: 'F32', data: () => encodeTensor(a, 'F32') },
        { name: 'b', dims: [6], type: 'F16', data: () => encodeTensor(b, 'F16') },
        { name: 'c', dims: [32, 2], type: 'Q8_0', data: () => encodeTensor(a, 'Q8_0') },
      ],
    );
    const file = readGguf(path);
    expect(file.version).toBe(3);
    const values = Object.fromEntries([...file.metadata].map(([k, v]) => [k, v.value]));
    expect(values).toEqual({ u8: 200, i8: -100, u16: 65000, i16: -32000, u32: 4_000_000_000, i32: -2_000_000_000, f32: 0.25, f64: Math.PI, u64: 2n ** 60n, i64: -5, bool: true, string: 'grüße 🚀', strings: ['a', '', 'ç'], ints: [1, -2, 3] });
    expect(file.tensors.map((t) => [t.name, t.dims, t.typeName])).toEqual([['a', [32, 2], 'F32'], ['b', [6], 'F16'], ['c', [32, 2], 'Q8_0']]);
    for (const t of file.tensors) expect(t.offset % 32).toBe(0);
    const [ta, tb, tc] = file.tensors;
    expect(Array.from(decodeTensor(readTensorBytes(file, ta!), 'F32', 64))).toEqual(Array.from(a));
    expect(Array.from(decodeTensor(readTensorBytes(file, tb!), 'F16', 6))).toEqual(Array.from(b));
    expect(Array.from(decodeTensor(readTensorBytes(file, tc!), 'Q8_0', 64))).toEqual(Array.from(dequantizeQ8_0(quantizeQ8_0(a), 64)));
    expect(file.fileBytes).toBe(readFileSync(path).length);
  });

  it('Q8_0: one F16 scale max|x|/127 per 32 values, int8 rounded half away from zero (hand-computed block)', () => {
    const x = new Float32Array(32);
    x[0] = 1.27; // the block's max: d = 0.01
    x[1] = -0.005; // -0.5 -> -1 (away from zero), not 0
    x[2] = 0.015; // 1.5 -> 2
    x[3] = -1.27;
    x[4] = 0.3;
    const bytes = quantizeQ8_0(x);
    expect(bytes.length).toBe(34);
    const view = new DataView(bytes.buffer);
    const d = decodeTensor(bytes.subarray(0, 2), 'F16', 1)[0] as number; // the stored scale, F16 of 0.01
    expect(Math.abs(d - 0.01)).toBeLessThan(1e-5);
    expect([1, 2, 3, 4, 5, 6].map((i) => view.getInt8(1 + i))).toEqual([127, -1, 2, -127, 30, 0]);
    const back = dequantizeQ8_0(bytes, 32);
    expect(back[4]).toBeCloseTo(30 * d, 7);
    // Every value within half a step of its original.
    const r = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 32)));
    const rb = dequantizeQ8_0(quantizeQ8_0(r), 256);
    for (let blk = 0; blk < 8; blk++) {
      const amax = Math.max(...Array.from(r.subarray(blk * 32, blk * 32 + 32), Math.abs));
      for (let j = 0; j < 32; j++) expect(Math.abs((rb[blk * 32 + j] as number) - (r[blk * 32 + j] as number))).toBeLessThanOrEqual((amax / 127) * 0.5 + 1e-3 * amax);
    }
    expect(() => quantizeQ8_0(new Float32Array(40))).toThrow('Q8_0 needs a multiple of 32 values, got 40');
  });

  it('permutes q/k rows into llama.cpp pairs and back (a 2-head, width-4 hand case)', () => {
    // rows 0..7 = head 0 (rows 0-3), head 1 (rows 4-7); one value per row.
    const rows = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    const llama = permuteRotaryRows(rows, 2, 1, true);
    // Head 0's rotary pairs (0, 2) and (1, 3) become neighbours: 0, 2, 1, 3.
    expect(Array.from(llama)).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    expect(Array.from(permuteRotaryRows(llama, 2, 1, false))).toEqual(Array.from(rows));
  });
});

describe('bad files are refused by name', () => {
  const exported = async (name: string) => {
    const model = fixtureModel({ num_hidden_layers: 1 });
    const path = join(dir, `${name}.gguf`);
    await exportGguf(model, tokenizer(), path, { dtype: 'f16' });
    model.dispose();
    return path;
  };

  it('a file that is not GGUF, an unsupported version, a missing file', async () => {
    const notGguf = join(dir, 'model.safetensors.gguf');
    writeFileSync(notGguf, '{"not": "gguf"}');
    expect(() => readGguf(notGguf)).toThrow(`${notGguf}: not a GGUF file (it does not start with "GGUF")`);
    const v1 = join(dir, 'v1.gguf');
    const bytes = readFileSync(await exported('v1-source'));
    bytes.writeUInt32LE(1, 4);
    writeFileSync(v1, bytes);
    expect(() => readGguf(v1)).toThrow(`${v1}: GGUF version 1 is not supported (deepen reads versions 2 and 3)`);
    expect(() => readGguf(join(dir, 'missing.gguf'))).toThrow(/missing\.gguf: cannot open \(ENOENT\)/);
  });

  it('a truncated file: in the header, and in the tensor data', async () => {
    const full = readFileSync(await exported('truncate-source'));
    const inHeader = join(dir, 'cut-header.gguf');
    writeFileSync(inHeader, full.subarray(0, 200));
    expect(() => readGguf(inHeader)).toThrow(/cut-header\.gguf: truncated GGUF header: .* runs past the end of the file \(200 bytes\)/);
    const inData = join(dir, 'cut-data.gguf');
    writeFileSync(inData, full.subarray(0, full.length - 100));
    expect(() => readGguf(inData)).toThrow(new RegExp(`cut-data\\.gguf: truncated: tensor \\S+'s data ends at byte \\d+, the file has ${full.length - 100} bytes`));
    expect(() => readGgufModel(inData)).toThrow(GgufError);
  });

  it('a quantization deepen does not read (Q4_K), named with the tensor', async () => {
    const path = await exported('q4k');
    const bytes = readFileSync(path);
    // Re-label the first F16 tensor as Q4_K (ggml type 12): its type u32 follows its name and dims.
    const file = readGguf(path);
    const first = file.tensors.find((t) => t.typeName === 'F16')!;
    const at = bytes.indexOf(Buffer.from(first.name, 'utf8')) + first.name.length + 4 + 8 * first.dims.length;
    expect(bytes.readUInt32LE(at)).toBe(1);
    bytes.writeUInt32LE(12, at);
    const q4 = join(dir, 'relabelled-q4k.gguf');
    writeFileSync(q4, bytes);
    expect(() => readGgufModel(q4)).toThrow(`${q4}: tensor ${first.name} is Q4_K; deepen reads F32, F16, BF16 and Q8_0 (dequantize other types with llama.cpp's llama-quantize first)`);
  });

  it('an architecture, a model key or a tokenizer deepen does not implement', async () => {
    const source = readGguf(await exported('meta-source'));
    const rewrite = async (name: string, edit: (m: Array<[string, GgufValue]>) => Array<[string, GgufValue]>) => {
      const path = join(dir, `${name}.gguf`);
      await writeGguf(
        path,
        edit([...source.metadata]),
        source.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.typeName as 'F16' | 'F32', data: () => readTensorBytes(source, t) })),
      );
      return path;
    };
    const gemma = await rewrite('gemma', (m) => m.map(([k, v]) => (k === 'general.architecture' ? [k, str('gemma2')] : [k, v])));
    expect(() => readGgufModel(gemma)).toThrow(`${gemma}: architecture 'gemma2' is not one deepen implements (it reads llama, qwen2, qwen3)`);
    const softcap = await rewrite('softcap', (m) => [...m, ['llama.final_logit_softcapping', f32(30)]]);
    expect(() => readGgufModel(softcap)).toThrow(`${softcap}: metadata llama.final_logit_softcapping is not implemented by deepen (it would change the model)`);
    const spm = await rewrite('spm', (m) => m.map(([k, v]) => (k === 'tokenizer.ggml.model' ? [k, str('llama')] : [k, v])));
    expect(() => readGgufModel(spm)).toThrow(`${spm}: tokenizer.ggml.model is 'llama'; deepen rebuilds only byte-level BPE tokenizers ('gpt2', as Llama 3, Qwen and deepen's own models use), not SentencePiece ('llama', Llama 2 / Mistral)`);
    const yarn = await rewrite('yarn', (m) => [...m, ['llama.rope.scaling.type', str('yarn')], ['llama.rope.scaling.factor', f32(4)]]);
    expect(() => readGgufModel(yarn)).toThrow(`${yarn}: llama.rope.scaling.type 'yarn' is not implemented by deepen's GGUF import`);
  });

  it('a failed write leaves nothing behind and the old file untouched', async () => {
    const path = join(dir, 'keep.gguf');
    writeFileSync(path, 'old');
    await expect(
      writeGguf(path, [['x', u32(1)]], [{ name: 't', dims: [4], type: 'F32', data: () => { throw new Error('tensor failed'); } }]),
    ).rejects.toThrow('tensor failed');
    expect(readFileSync(path, 'utf8')).toBe('old');
    expect(readdirSync(dir).filter((f) => f.includes('keep.gguf'))).toEqual(['keep.gguf']);
  });
});
