import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initBackend } from '@deepen/backend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportGguf, GgufError, readGguf, readGgufModel, modelFromGguf, metaValue } from '../src/index.js';
import { agreement, deepenScores, fixtureModel, tempDir, textTokens, tokenizer, type FixtureConfig } from './fixtures.js';
import { llamaCpp, llamaCppScores, openInLlamaCpp } from './llama-cpp.js';

/**
 * Every family deepen loads runs in llama.cpp under its own architecture (Mistral as llama,
 * as llama.cpp's converter writes it), with its biases, q/k norms, head widths and rotary
 * scaling; and what llama.cpp cannot run is refused with the reason.
 */

const dir = tempDir();
const POSITIONS = 440;

beforeAll(async () => {
  await initBackend({ engine: 'native' });
  await llamaCpp();
});

afterAll(async () => {
  await (await llamaCpp()).dispose();
});

async function roundTrip(name: string, overrides: FixtureConfig, positions = POSITIONS) {
  const model = fixtureModel(overrides, 21);
  const path = join(dir, `${name}.gguf`);
  const result = await exportGguf(model, tokenizer(), path);
  const tokens = textTokens(positions + 1);
  const ours = deepenScores(model, tokens);
  const run = await openInLlamaCpp(path, 1024);
  const theirs = await llamaCppScores(run, tokens);
  await run.dispose();
  // And back: the imported model is the same model.
  const back = modelFromGguf(readGgufModel(path), path);
  const again = deepenScores(back, tokens);
  back.dispose();
  model.dispose();
  return { result, path, ours, theirs, llamaCpp: agreement(ours, theirs), reimported: agreement(ours, again) };
}

const CASES: Array<[string, FixtureConfig, string]> = [
  ['qwen2 (q/k/v biases)', { model_type: 'qwen2' }, 'qwen2'],
  ['qwen3 (q/k norms, head_dim 24 != hidden / heads)', { model_type: 'qwen3', head_dim: 24 }, 'qwen3'],
  ['llama with attention_bias and mlp_bias', { attention_bias: true, mlp_bias: true }, 'llama'],
  ['llama with head_dim 24', { head_dim: 24 }, 'llama'],
  ['llama with Llama 3.1 rope scaling', { rope_theta: 10000, head_dim: 16, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } }, 'llama'],
  ['llama with linear rope scaling', { rope_scaling: { rope_type: 'linear', factor: 2 } }, 'llama'],
  ['mistral without a binding window', { model_type: 'mistral', sliding_window: 4096, max_position_embeddings: 1024 }, 'llama'],
];

describe('each family in llama.cpp', () => {
  for (const [label, overrides, arch] of CASES) {
    it(`${label}: runs as llama.cpp's ${arch}, worst gap <= 1e-3, identical top-5, and imports back`, async () => {
      const r = await roundTrip(label.split(' ')[0] + Math.random().toString(36).slice(2, 6), overrides);
      expect(r.result.arch).toBe(arch);
      expect(r.result.warnings).toEqual([]);
      expect(r.llamaCpp.worstGap).toBeLessThanOrEqual(1e-3);
      expect(r.llamaCpp.top5Identical).toBe(1);
      expect(r.reimported.worstGap).toBeLessThan(1e-5);
    });
  }

  it('the llama3 rope factors come back as the same rope_scaling', async () => {
    const model = fixtureModel({ head_dim: 16, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } }, 3);
    const path = join(dir, 'llama3-rope.gguf');
    await exportGguf(model, tokenizer(), path);
    expect(readGguf(path).tensors.find((t) => t.name === 'rope_freqs.weight')?.dims).toEqual([8]);
    expect(readGgufModel(path).config.rope_scaling).toEqual(model.config.rope_scaling);
    model.dispose();
  });

  it('a Mistral sliding window llama.cpp ignores is said, and the file matches within the window', async () => {
    const window = 128;
    const r = await roundTrip('mistral-window', { model_type: 'mistral', sliding_window: window });
    expect(r.result.warnings).toEqual([
      `llama.cpp's llama architecture has no sliding window: the file matches this model for contexts up to ${window} tokens (its window) and attends to the whole context beyond`,
    ]);
    const inside = agreement(
      { logprobs: r.ours.logprobs.slice(0, window - 1), top5: r.ours.top5.slice(0, window - 1) },
      { logprobs: r.theirs.logprobs.slice(0, window - 1), top5: r.theirs.top5.slice(0, window - 1) },
    );
    expect(inside.worstGap).toBeLessThanOrEqual(1e-3);
    // Beyond the window the two differ, which is why the export says so.
    const beyond = r.ours.logprobs.slice(window).map((v, i) => Math.abs(v - (r.theirs.logprobs[window + i] as number)));
    expect(Math.max(...beyond)).toBeGreaterThan(1e-2);
  });
});

describe('what cannot be exported is refused by name, and nothing is written', () => {
  const refusals: Array<[string, FixtureConfig, string]> = [
    ['post-LN (cannot fold)', { deepen: { norm_scheme: 'post' } }, "cannot fold norm scheme 'post' into a plain LLaMA: its blocks scale the residual or normalise after it, so llama.cpp cannot run it"],
    ['DeepNorm (cannot fold)', { deepen: { norm_scheme: 'deepnorm' } }, "cannot fold norm scheme 'deepnorm'"],
    ['dynamic NTK rope', { rope_scaling: { rope_type: 'dynamic', factor: 2 } }, 'rope_scaling type dynamic (NTK scaling past max_position_embeddings) has no llama.cpp equivalent'],
    ['yarn rope', { rope_scaling: { rope_type: 'yarn', factor: 2, original_max_position_embeddings: 512 } }, 'rope_scaling type yarn is not exported yet'],
    ['qwen3 with an o_proj bias', { model_type: 'qwen3', attention_bias: true }, "llama.cpp's qwen3 architecture has no o_proj bias (attention_bias true)"],
  ];
  for (const [label, overrides, message] of refusals) {
    it(label, async () => {
      const model = fixtureModel(overrides);
      const path = join(dir, `refused-${label.replace(/\W+/g, '-')}.gguf`);
      writeFileSync(path, 'the file that was there before');
      await expect(exportGguf(model, tokenizer(), path)).rejects.toThrow(message);
      await expect(exportGguf(model, tokenizer(), path)).rejects.toBeInstanceOf(GgufError);
      expect(readFileSync(path, 'utf8')).toBe('the file that was there before');
      model.dispose();
    });
  }

  it('an unknown dtype', async () => {
    const model = fixtureModel();
    const path = join(dir, 'q4.gguf');
    await expect(exportGguf(model, tokenizer(), path, { dtype: 'q4_k' as never })).rejects.toThrow("GGUF dtype 'q4_k' is not one deepen writes (f32, f16, bf16, q8_0)");
    expect(existsSync(path)).toBe(false);
    model.dispose();
  });

  it('records what was folded', async () => {
    const model = fixtureModel({ deepen: { norm_scheme: 'lns+layerscale' } });
    const path = join(dir, 'folded.gguf');
    await exportGguf(model, tokenizer(), path, { name: 'tiny lns' });
    const file = readGguf(path);
    expect(metaValue(file, 'deepen.folded_from', 'string')).toBe('lns+layerscale');
    expect(metaValue(file, 'general.name', 'string')).toBe('tiny lns');
    model.dispose();
  });
});
