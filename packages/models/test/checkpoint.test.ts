import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseSafetensors, serializeSafetensors, tensorToFloat32 } from '@deepen/core';
import { LlamaModel, loadCheckpoint, saveCheckpoint } from '../src/index.js';
import { ids, maxAbsDiff, tinyConfig } from './helpers.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

const tmp = () => mkdtempSync(join(tmpdir(), 'deepen-ckpt-'));
const input = () => ids([[1, 2, 3, 4, 5, 6, 7], [9, 8, 7, 6, 5, 4, 3]]);

function logitsOf(model: LlamaModel): Float32Array {
  const x = input();
  const l = model.logits(x);
  const out = l.dataSync() as Float32Array;
  tf.dispose([x, l]);
  return out;
}

describe('save and load', () => {
  for (const scheme of ['lns+layerscale', 'sandwich', 'deepnorm', 'pre']) {
    it(`round trips '${scheme}' bit for bit`, async () => {
      const model = LlamaModel.create(tinyConfig(scheme, { tie_word_embeddings: scheme === 'pre' }), { seed: 21 });
      const dir = join(tmp(), 'ckpt');
      await saveCheckpoint(model, dir, { files: { 'tokenizer.json': '{"model":{}}' } });
      expect(readdirSync(dir).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']);
      const loaded = loadCheckpoint(dir);
      expect(loaded.config).toEqual({ ...model.config, deepen: expect.objectContaining(model.config.deepen) });
      for (const [name, v] of model.params) expect(maxAbsDiff(v.dataSync(), loaded.param(name).dataSync()), name).toBe(0);
      expect(maxAbsDiff(logitsOf(model), logitsOf(loaded))).toBe(0);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      expect(config.deepen.stock_runtime_compatible).toBe(scheme === 'pre');
      if (scheme !== 'pre') expect(config.deepen.note).toMatch(new RegExp(`norm scheme '${scheme.replace('+', '\\+')}'`));
      [model, loaded].forEach((m) => m.dispose());
    });
  }

  it('stores [out, in] linears under Hugging Face names with format pt metadata', async () => {
    const model = LlamaModel.create(tinyConfig('pre'), { seed: 1 });
    const dir = join(tmp(), 'ckpt');
    await saveCheckpoint(model, dir);
    const file = parseSafetensors(readFileSync(join(dir, 'model.safetensors')), 'model.safetensors');
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.tensors.get('model.layers.0.self_attn.k_proj.weight')!.shape).toEqual([8, 16]); // 2 kv heads x 4 dims, hidden 16
    expect(file.tensors.get('model.layers.2.mlp.down_proj.weight')!.shape).toEqual([16, 24]);
    expect(file.tensors.get('lm_head.weight')!.shape).toEqual([16, 16]);
    model.dispose();
  });

  it('stores F16 and BF16 within their precision, and config.json names the dtype', async () => {
    const model = LlamaModel.create(tinyConfig('lns'), { seed: 22 });
    for (const [dtype, relative, torch] of [['F16', 2 ** -11, 'float16'], ['BF16', 2 ** -8, 'bfloat16']] as const) {
      const dir = join(tmp(), dtype);
      await saveCheckpoint(model, dir, { dtype });
      const header = parseSafetensors(readFileSync(join(dir, 'model.safetensors')), dtype);
      expect([...header.tensors.values()].every((t) => t.dtype === dtype)).toBe(true);
      expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype).toBe(torch);
      // Folded and sharded exports name it too.
      const folded = join(tmp(), `${dtype}-folded`);
      await saveCheckpoint(model, folded, { dtype, fold: true, maxShardBytes: 4096 });
      expect(JSON.parse(readFileSync(join(folded, 'config.json'), 'utf8')).torch_dtype).toBe(torch);
      const loaded = loadCheckpoint(dir);
      for (const [name, v] of model.params) {
        const a = v.dataSync();
        const b = loaded.param(name).dataSync();
        for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(Math.abs(a[i]!) * relative + 1e-7);
      }
      expect(maxAbsDiff(logitsOf(model), logitsOf(loaded))).toBeLessThan(dtype === 'F16' ? 2e-3 : 2e-2);
      loaded.dispose();
    }
    model.dispose();
  });

  it('shards above the size threshold with an index, and loads the shards', async () => {
    const model = LlamaModel.create(tinyConfig('lns'), { seed: 23 });
    const dir = join(tmp(), 'sharded');
    await saveCheckpoint(model, dir, { maxShardBytes: 4096 });
    const files = readdirSync(dir);
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(2);
    expect(files).not.toContain('model.safetensors');
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map)).toHaveLength(model.params.size);
    expect(index.metadata.total_size).toBe([...model.params.values()].reduce((a, v) => a + v.size * 4, 0));
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype).toBe('float32');
    const loaded = loadCheckpoint(dir);
    expect(maxAbsDiff(logitsOf(model), logitsOf(loaded))).toBe(0);
    [model, loaded].forEach((m) => m.dispose());
  });
});

describe('export for stock LLaMA runtimes (fold)', () => {
  for (const scheme of ['lns', 'lns+layerscale', 'skipinit', 'lns+scaled']) {
    it(`folds '${scheme}' into a plain Pre-LN LLaMA with the same logits`, async () => {
      const model = LlamaModel.create(tinyConfig(scheme), { seed: 24 });
      for (const [name, v] of model.params) if (name.endsWith('_gate')) v.assign(tf.randomUniform(v.shape, 0.2, 1.5, 'float32', 3));
      const dir = join(tmp(), 'folded');
      await saveCheckpoint(model, dir, { fold: true });
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      expect(config.deepen).toEqual({ norm_scheme: 'pre', folded_from: scheme, stock_runtime_compatible: true });
      const file = parseSafetensors(readFileSync(join(dir, 'model.safetensors')), 'folded');
      expect([...file.tensors.keys()].some((n) => n.endsWith('_gate'))).toBe(false);
      const asPre = loadCheckpoint(dir);
      expect(asPre.scheme.name).toBe('pre');
      expect(maxAbsDiff(logitsOf(model), logitsOf(asPre))).toBeLessThan(2e-5);
      [model, asPre].forEach((m) => m.dispose());
    });
  }

  it('refuses schemes that have no Pre-LN equivalent, leaving an existing folder untouched', async () => {
    const model = LlamaModel.create(tinyConfig('post'), { seed: 1 });
    const dir = join(tmp(), 'ckpt');
    await saveCheckpoint(model, dir);
    const before = readFileSync(join(dir, 'model.safetensors'));
    await expect(saveCheckpoint(model, dir, { fold: true })).rejects.toThrow(/cannot fold norm scheme 'post' into a plain LLaMA/);
    expect(readFileSync(join(dir, 'model.safetensors')).equals(before)).toBe(true);
    model.dispose();
  });
});

describe('bad checkpoints get errors that name the file and tensor', () => {
  async function saved(): Promise<string> {
    const model = LlamaModel.create(tinyConfig('pre'), { seed: 2 });
    const dir = join(tmp(), 'ckpt');
    await saveCheckpoint(model, dir);
    model.dispose();
    return dir;
  }

  it('truncated weights', async () => {
    const dir = await saved();
    const path = join(dir, 'model.safetensors');
    const bytes = readFileSync(path);
    writeFileSync(path, bytes.subarray(0, bytes.length - 100));
    expect(() => loadCheckpoint(dir)).toThrow(new RegExp(`${path}: tensor .* data ends at byte \\d+ but the data section has \\d+ bytes \\(truncated file\\)`));
    writeFileSync(path, bytes.subarray(0, 5));
    expect(() => loadCheckpoint(dir)).toThrow(`${path}: file is 5 bytes, too short for a safetensors header (truncated?)`);
    writeFileSync(path, bytes.subarray(0, 100));
    expect(() => loadCheckpoint(dir)).toThrow(/header length \d+ exceeds the file size 100/);
  });

  it('corrupt header', async () => {
    const dir = await saved();
    const path = join(dir, 'model.safetensors');
    const bytes = Buffer.from(readFileSync(path));
    bytes[9] = 0x7d; // '{}"...' is no longer JSON
    writeFileSync(path, bytes);
    expect(() => loadCheckpoint(dir)).toThrow(new RegExp(`${path}: header is not valid JSON`));
  });

  it('shape mismatch with config.json', async () => {
    const dir = await saved();
    const configPath = join(dir, 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8'));
    writeFileSync(configPath, JSON.stringify({ ...config, intermediate_size: 32 }));
    expect(() => loadCheckpoint(dir)).toThrow(/model\.safetensors: tensor model\.layers\.0\.mlp\.down_proj\.weight has shape \[16,24\], expected \[16,32\] from config\.json/);
  });

  it('missing and unexpected tensors', async () => {
    const dir = await saved();
    const path = join(dir, 'model.safetensors');
    const file = parseSafetensors(readFileSync(path), path);
    const keep = [...file.tensors].filter(([n]) => n !== 'model.layers.1.self_attn.v_proj.weight');
    writeFileSync(path, Buffer.concat(serializeSafetensors(keep.map(([name, t]) => ({ name, ...t })), { format: 'pt' })));
    expect(() => loadCheckpoint(dir)).toThrow(`${dir}: missing tensor model.layers.1.self_attn.v_proj.weight (looked in model.safetensors)`);
    const extra = [...file.tensors].map(([name, t]) => ({ name, ...t }));
    extra.push({ name: 'model.layers.9.mlp.up_proj.weight', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) });
    writeFileSync(path, Buffer.concat(serializeSafetensors(extra)));
    expect(() => loadCheckpoint(dir)).toThrow(/tensor model\.layers\.9\.mlp\.up_proj\.weight is not part of a 3-layer 'pre' model/);
  });

  it('missing files and bad config', async () => {
    expect(() => loadCheckpoint('/nonexistent/ckpt')).toThrow('/nonexistent/ckpt: checkpoint folder not found');
    const dir = await saved();
    writeFileSync(join(dir, 'config.json'), '{"hidden_size": ');
    expect(() => loadCheckpoint(dir)).toThrow(new RegExp(`${join(dir, 'config.json')}: not valid JSON`));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama', vocab_size: 16, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 5 }));
    expect(() => loadCheckpoint(dir)).toThrow(/config\.json: .*hidden_size \(16\) must be divisible by num_attention_heads \(5\)/);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
  });
});

describe('safetensors format', () => {
  it('pads the header to 8 bytes, keeps offsets contiguous and round trips integer dtypes', () => {
    const chunks = serializeSafetensors(
      [
        { name: 'b', dtype: 'I32', shape: [2], bytes: new Uint8Array(new Int32Array([-1, 7]).buffer) },
        { name: 'a', dtype: 'U8', shape: [3], bytes: new Uint8Array([1, 2, 3]) },
      ],
      { note: 'x' },
    );
    const buffer = Buffer.concat(chunks);
    const headerLength = Number(buffer.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const parsed = parseSafetensors(buffer, 'mem');
    expect(parsed.metadata).toEqual({ note: 'x' });
    expect(Array.from(parsed.tensors.get('a')!.bytes)).toEqual([1, 2, 3]);
    expect(Array.from(new Int32Array(new Uint8Array(parsed.tensors.get('b')!.bytes).buffer))).toEqual([-1, 7]);
    const header = JSON.parse(buffer.subarray(8, 8 + headerLength).toString());
    expect(header.a.data_offsets).toEqual([0, 3]);
    expect(header.b.data_offsets).toEqual([3, 11]);
  });

  it('decodes float tensors that sit at unaligned offsets', () => {
    const f32 = new Float32Array([1.5, -2.25]);
    const f16 = new Uint16Array([0x3c00, 0xc000]); // 1, -2
    const buffer = Buffer.concat(
      serializeSafetensors([
        { name: 'a', dtype: 'U8', shape: [3], bytes: new Uint8Array([9, 9, 9]) },
        { name: 'b', dtype: 'F32', shape: [2], bytes: new Uint8Array(f32.buffer) },
        { name: 'c', dtype: 'F16', shape: [2], bytes: new Uint8Array(f16.buffer) },
      ]),
    );
    const parsed = parseSafetensors(buffer, 'mem');
    expect(parsed.tensors.get('b')!.bytes.byteOffset % 4).not.toBe(0);
    expect(Array.from(tensorToFloat32(parsed.tensors.get('b')!, 'b'))).toEqual([1.5, -2.25]);
    expect(Array.from(tensorToFloat32(parsed.tensors.get('c')!, 'c'))).toEqual([1, -2]);
    expect(() => tensorToFloat32(parsed.tensors.get('a')!, 'mem: tensor a')).toThrow('mem: tensor a: dtype U8 is not a floating-point type');
  });

  it('rejects overlapping or gapped offsets and wrong byte counts', () => {
    const make = (header: object, dataBytes: number) => {
      let json = JSON.stringify(header);
      json += ' '.repeat((8 - (json.length % 8)) % 8);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([len, Buffer.from(json), Buffer.alloc(dataBytes)]);
    };
    expect(() => parseSafetensors(make({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), 'f')).toThrow(
      /tensor b: data starts at byte 4, expected 8/,
    );
    expect(() => parseSafetensors(make({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), 'f')).toThrow(/tensor a: 8 bytes of data for shape \[3\] F32, expected 12/);
    expect(() => parseSafetensors(make({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 8), 'f')).toThrow(/data section has 8 bytes but the tensors cover 4/);
    expect(() => parseSafetensors(make({ a: { dtype: 'Q4', shape: [1], data_offsets: [0, 4] } }, 4), 'f')).toThrow(/tensor a: unsupported dtype "Q4"/);
  });
});
