import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { BLOCK, configFromJson, KVCache, LlamaModel, loadCheckpoint, readCheckpointConfig, saveCheckpoint, type LlamaConfig } from '../src/index.js';

/**
 * Tiny checkpoints of each family in its on-disk format, with what transformers computes for
 * them: written by test/fixtures/generate_family_reference.py, an independent PyTorch
 * re-implementation of each family's modelling code (see fixtures/families/README.md).
 * Weights have std 0.3, so attention and every family feature move the loss; each fixture's
 * `ablations` is the loss with one feature ignored, and the tests below ignore the same
 * feature in deepen and check it lands there, far from the real loss: the tests have power.
 */
const FIXTURES = fileURLToPath(new URL('./fixtures/families/', import.meta.url));
const dir = (name: string) => join(FIXTURES, name);

interface Expected {
  input_ids: number[][];
  loss: number;
  token_losses: number[][];
  logits: number[][][];
  ablations: Record<string, number>;
}
const expected = (name: string): Expected => JSON.parse(readFileSync(join(dir(name), 'expected.json'), 'utf8')) as Expected;

function lossOf(model: LlamaModel, ids: number[][]): number {
  const input = tf.tensor2d(ids, undefined, 'int32');
  const loss = model.loss(input);
  const value = loss.dataSync()[0] as number;
  tf.dispose([input, loss]);
  return value;
}

/** The same weights under a changed config (the way "ignoring a feature" would read them), minus `drop`. */
function variant(model: LlamaModel, patch: Partial<LlamaConfig>, options: { drop?: (name: string) => boolean; zero?: (name: string) => boolean } = {}): LlamaModel {
  const tensors = new Map<string, tf.Tensor>();
  for (const [name, v] of model.params) {
    if (options.drop?.(name)) continue;
    tensors.set(name, options.zero?.(name) ? tf.zerosLike(v) : v);
  }
  try {
    return LlamaModel.fromTensors({ ...model.config, ...patch }, tensors, 'variant');
  } finally {
    for (const [name, t] of tensors) if (options.zero?.(name)) t.dispose();
  }
}

/** Each fixture's ablations, reproduced in deepen by ignoring the same feature. */
const ABLATIONS: Record<string, (model: LlamaModel) => LlamaModel> = {
  no_bias: (m) => variant(m, {}, { zero: (n) => n.endsWith('.bias') }),
  no_o_proj_bias: (m) => variant(m, {}, { zero: (n) => n.endsWith(BLOCK.oBias) }),
  no_mlp_bias: (m) => variant(m, {}, { zero: (n) => n.includes('.mlp.') && n.endsWith('.bias') }),
  // Plain rotary; dynamic NTK's fixture runs past max_position_embeddings, where plain rotary needs a longer table.
  no_rope_scaling: (m) => variant(m, { rope_scaling: null, max_position_embeddings: Math.max(m.config.max_position_embeddings, 64) }),
  no_attention_factor: (m) => variant(m, { rope_scaling: { ...(m.config.rope_scaling as Extract<LlamaConfig['rope_scaling'], { rope_type: 'yarn' }>), attention_factor: 1 } }),
  no_window: (m) => variant(m, { sliding_window: null, use_sliding_window: false, layer_types: null }),
  window_off_by_one: (m) => variant(m, { sliding_window: (m.config.sliding_window as number) + 1 }),
  window_all_layers: (m) => variant(m, { layer_types: m.config.layer_types ?? Array.from({ length: m.config.num_hidden_layers }, () => 'sliding_attention' as const) }),
  derived_layer_types: (m) => variant(m, { layer_types: null }),
  // Qwen3 without its q/k norms is a Llama of the same shape.
  no_qk_norm: (m) => variant(m, { model_type: 'llama' }, { drop: (n) => n.endsWith(BLOCK.qNorm) || n.endsWith(BLOCK.kNorm) }),
};
/** Ablations that are not a config a loader could read (they test the reference's own power). */
const REFERENCE_ONLY = new Set(['qk_norm_after_rope', 'scale_from_hidden_size', 'unrounded_float32']);

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

const names = readdirSync(FIXTURES).filter((n) => !n.includes('.'));

describe('Hugging Face family checkpoints reproduce transformers', () => {
  it('has a fixture for every family feature', () => {
    expect(names.length).toBeGreaterThanOrEqual(14);
    const types = new Set(names.map((n) => readCheckpointConfig(dir(n)).model_type));
    expect([...types].sort()).toEqual(['llama', 'mistral', 'qwen2', 'qwen3']);
  });

  for (const name of names) {
    it(`${name}: logits and loss match the reference, and ignoring its feature does not`, () => {
      const want = expected(name);
      const model = loadCheckpoint(dir(name));
      const ids = tf.tensor2d(want.input_ids, undefined, 'int32');
      const logits = model.logits(ids);
      const got = logits.arraySync();
      let maxError = 0;
      want.logits.forEach((seq, b) => seq.forEach((row, t) => row.forEach((v, k) => (maxError = Math.max(maxError, Math.abs(v - got[b]![t]![k]!))))));
      tf.dispose([ids, logits]);
      // The float32 reference is itself ~3e-5 from float64 on these std-0.3 weights.
      expect(maxError).toBeLessThan(1e-4);
      const loss = lossOf(model, want.input_ids);
      expect(Math.abs(loss - want.loss)).toBeLessThan(2e-5);

      for (const [ablation, reference] of Object.entries(want.ablations)) {
        if (REFERENCE_ONLY.has(ablation)) continue;
        const make = ABLATIONS[ablation];
        expect(make, `no deepen counterpart for ablation '${ablation}'`).toBeDefined();
        const ablated = make!(model);
        const ablatedLoss = lossOf(ablated, want.input_ids);
        ablated.dispose();
        expect(Math.abs(ablatedLoss - reference), `${ablation}: deepen ${ablatedLoss} vs reference ${reference}`).toBeLessThan(2e-5);
        expect(Math.abs(ablatedLoss - want.loss), `${ablation} must change the loss`).toBeGreaterThan(1e-3);
      }
      model.dispose();
    });
  }

  it('reads the transformers v5 layout (rope_parameters) exactly as the v4 one', () => {
    const v4 = readCheckpointConfig(dir('llama3-rope'));
    const v5 = readCheckpointConfig(dir('llama3-rope-v5'));
    expect(v5.rope_scaling).toEqual(v4.rope_scaling);
    expect(v5.rope_theta).toBe(500000);
    expect(v4.rope_scaling).toMatchObject({ rope_type: 'llama3', factor: 8 });
    // Ignoring rope_parameters would fall back to theta 10000 and no scaling: the v5 fixture's loss tells them apart.
    expect(v4.eos_token_ids).toEqual([2, 5, 6]);
  });

  it('ignoring head_dim cannot go unnoticed: the weights do not fit', () => {
    const json = JSON.parse(readFileSync(join(dir('mistral-head-dim'), 'config.json'), 'utf8')) as Record<string, unknown>;
    const model = loadCheckpoint(dir('mistral-head-dim'));
    delete json.head_dim;
    const wrong = configFromJson(json);
    expect(wrong.head_dim).toBe(8);
    const tensors = new Map<string, tf.Tensor>(model.params);
    expect(() => LlamaModel.fromTensors(wrong, tensors)).toThrow(/self_attn.q_proj.weight has shape \[32,64\], expected \[32,32\]/);
    model.dispose();
  });
});

describe('a family checkpoint saved by deepen stays that family', () => {
  for (const name of ['qwen2-sliding', 'qwen3', 'llama-bias-gqa', 'mistral-window', 'llama-yarn-rope']) {
    it(`${name}: same config keys and tensor names, same logits, in F32 and BF16`, async () => {
      const original = loadCheckpoint(dir(name));
      const source = JSON.parse(readFileSync(join(dir(name), 'config.json'), 'utf8')) as Record<string, unknown>;
      const out = join(mkdtempSync(join(tmpdir(), 'deepen-family-')), 'ckpt');
      await saveCheckpoint(original, out, { maxShardBytes: 40_000 });
      const saved = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(saved.model_type).toBe(source.model_type);
      expect(saved.architectures).toEqual(source.architectures);
      for (const key of ['sliding_window', 'use_sliding_window', 'max_window_layers', 'attention_bias', 'mlp_bias', 'head_dim', 'rope_theta', 'tie_word_embeddings']) {
        if (key in source) expect(saved[key], key).toEqual(source[key]);
      }
      const reloaded = loadCheckpoint(out);
      expect([...reloaded.params.keys()].sort()).toEqual([...original.params.keys()].sort());
      const want = expected(name);
      expect(Math.abs(lossOf(reloaded, want.input_ids) - lossOf(original, want.input_ids))).toBe(0);
      reloaded.dispose();
      const bf16 = join(mkdtempSync(join(tmpdir(), 'deepen-family-')), 'ckpt');
      await saveCheckpoint(original, bf16, { dtype: 'BF16' });
      const half = loadCheckpoint(bf16);
      expect(Math.abs(lossOf(half, want.input_ids) - want.loss)).toBeLessThan(0.05);
      half.dispose();
      original.dispose();
    });
  }
});

describe('family configs refuse what they do not implement, before any weight is read', () => {
  const base = () => JSON.parse(readFileSync(join(dir('qwen2-sliding'), 'config.json'), 'utf8')) as Record<string, unknown>;
  it('names the key, the value or the architecture', () => {
    expect(() => configFromJson({ ...base(), use_mrope: true })).toThrow(/use_mrope true \(multimodal rotary\) is not implemented/);
    expect(() => configFromJson({ ...base(), layer_types: ['sliding_attention', 'full_attention'] })).toThrow(/layer_types must list 'full_attention' or 'sliding_attention' for each of the 3 layers/);
    expect(() => configFromJson({ ...base(), use_sliding_window: false, layer_types: ['sliding_attention', 'full_attention', 'full_attention'] })).toThrow(/sliding layers but there is no window/);
    expect(() => configFromJson({ ...base(), mlp_bias: true })).toThrow(/'mlp_bias' is not a 'qwen2' key/);
    expect(() => configFromJson({ ...base(), architectures: ['Qwen2ForSequenceClassification'] })).toThrow(/architectures \["Qwen2ForSequenceClassification"\] is not implemented/);
    expect(() => configFromJson({ ...base(), rope_parameters: { full_attention: { rope_type: 'default' }, sliding_attention: { rope_type: 'default' } } })).toThrow(/rope_parameters per layer type/);
    expect(() => configFromJson({ ...base(), rope_parameters: { rope_type: 'default', rope_theta: 10 } })).toThrow(/rope_theta 1000000 and rope_parameters.rope_theta 10 disagree/);
    expect(() => configFromJson({ ...base(), model_type: 'deepseek_v3', architectures: ['DeepseekV3ForCausalLM'] })).toThrow(/multi-head latent attention \(MLA\)/);
  });

  it('applies transformers defaults for keys a config leaves out', () => {
    const mistral = JSON.parse(readFileSync(join(dir('mistral-head-dim'), 'config.json'), 'utf8')) as Record<string, unknown>;
    delete mistral.sliding_window;
    expect(configFromJson(mistral).sliding_window).toBe(4096); // MistralConfig's default
    const qwen3 = JSON.parse(readFileSync(join(dir('qwen3'), 'config.json'), 'utf8')) as Record<string, unknown>;
    delete qwen3.head_dim;
    expect(configFromJson({ ...qwen3, hidden_size: 512 }).head_dim).toBe(128); // Qwen3Config's default, not 512 / 4
  });
});

describe('decoding with the KV cache', () => {
  for (const name of ['mistral-window', 'qwen2-layer-types', 'qwen3', 'llama-yarn-rope', 'llama-bias-gqa']) {
    it(`${name}: position-by-position logits equal the full forward's (windows, biases, q/k norms, scaled rotary)`, () => {
      const model = loadCheckpoint(dir(name));
      const row = expected(name).input_ids[0]!;
      const full = model.logits([row]);
      const fullValues = full.arraySync()[0]!;
      full.dispose();
      const cache = new KVCache(model.config.num_hidden_layers);
      let maxError = 0;
      for (let t = 0; t < row.length; t++) {
        const step = model.logits([[row[t]!]], { cache });
        const values = step.arraySync()[0]![0]!;
        step.dispose();
        values.forEach((v, k) => (maxError = Math.max(maxError, Math.abs(v - fullValues[t]![k]!))));
      }
      cache.dispose();
      expect(maxError).toBeLessThan(1e-4);
      model.dispose();
    });
  }
});

describe('a refused config stops the load before any weight is read', () => {
  it('names the model_type or rope type even when the weights are garbage', () => {
    for (const [patch, message] of [
      [{ model_type: 'gemma2', architectures: ['Gemma2ForCausalLM'] }, /model_type 'gemma2' is not implemented/],
      [{ rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] } }, /rope type 'longrope' is not implemented/],
    ] as const) {
      const folder = join(mkdtempSync(join(tmpdir(), 'deepen-refused-')), 'ckpt');
      mkdirSync(folder);
      const config = JSON.parse(readFileSync(join(dir('llama-bias-gqa'), 'config.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(folder, 'config.json'), JSON.stringify({ ...config, ...patch }));
      writeFileSync(join(folder, 'model.safetensors'), 'not a safetensors file at all');
      expect(() => loadCheckpoint(folder)).toThrow(message);
    }
  });
});
