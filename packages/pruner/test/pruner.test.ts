import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { Rng } from '@deepen/core';
import { sequentialBatches, SequenceSet } from '@deepen/data';
import { depthDiagnostics } from '@deepen/evaluator';
import { BLOCK, LlamaModel, layerPrefix, loadCheckpoint, makeConfig, saveCheckpoint, type LlamaConfig } from '@deepen/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { angularPlan, applyPlan, blockInfluencePlan, removeLayersPlan } from '../src/index.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

const model = (norm: string, layers = 6) =>
  LlamaModel.create(
    makeConfig({ vocab_size: 40, hidden_size: 16, intermediate_size: 32, num_hidden_layers: layers, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, deepen: { norm_scheme: norm } }),
    { seed: 2 },
  );
const input = [[3, 14, 15, 9, 26, 5, 35, 8], [27, 18, 28, 18, 28, 4, 5, 9]];
const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

function identityAt(m: LlamaModel, layers: number[]): void {
  for (const l of layers) for (const s of [BLOCK.o, BLOCK.down]) tf.tidy(() => m.param(layerPrefix(l) + s).assign(tf.zerosLike(m.param(layerPrefix(l) + s))));
}

function diagnostics(m: LlamaModel) {
  const rng = Rng.fromSeed(3);
  const tokens = Uint16Array.from({ length: 400 }, () => 3 + rng.int(37));
  return depthDiagnostics(m, sequentialBatches(new SequenceSet({ tokens, offsets: Float64Array.from([0, 400]) }, { mode: 'packed', seqLen: 16, bos: null, eos: 2, pad: 0 }), 8));
}

describe('applying a plan', () => {
  for (const norm of ['lns', 'pre', 'lns+layerscale', 'deepnorm']) {
    it(`gives exactly the original model with those layers skipped ('${norm}', depths kept)`, () => {
      const original = model(norm);
      const plan = removeLayersPlan([4, 1], 6);
      const pruned = applyPlan(original, plan, { source: 'runs/x' });
      expect(pruned.config.num_hidden_layers).toBe(4);
      expect(pruned.config.deepen.layer_depths).toEqual([1, 3, 4, 6]);
      expect(pruned.config.deepen.pruned).toMatchObject({ from: 'runs/x', original_num_hidden_layers: 6, removed_layers: [1, 4], depths: 'keep' });
      const a = original.logits(input, { skipLayers: [1, 4] });
      const b = pruned.logits(input);
      expect(diff(a, b)).toBeLessThan(1e-5);
      tf.dispose([a, b]);
      [original, pruned].forEach((m) => m.dispose());
    });
  }

  it('keeps a Qwen2 model a Qwen2 model: biases, layer types and max_window_layers follow their layers', async () => {
    const base = { vocab_size: 40, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32 };
    const cases: Array<Partial<LlamaConfig>> = [
      { max_window_layers: 2, layer_types: null },
      { layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention', 'full_attention', 'sliding_attention'] },
    ];
    for (const windows of cases) {
      const config = makeConfig({ ...base, model_type: 'qwen2', use_sliding_window: true, sliding_window: 3, ...windows, deepen: { norm_scheme: 'pre' } });
      const original = LlamaModel.create(config, { seed: 4 });
      // Random biases, so a bias that followed the wrong layer would show.
      const rng = Rng.fromSeed(5);
      for (const [name, v] of original.params) if (name.endsWith('.bias')) v.assign(tf.tensor1d(rng.fillNormal(new Float32Array(v.size), 0, 0.5)));
      const pruned = applyPlan(original, removeLayersPlan([4, 1], 6));
      expect(pruned.config.model_type).toBe('qwen2');
      if (windows.layer_types) {
        expect(pruned.config.layer_types).toEqual(['sliding_attention', 'sliding_attention', 'full_attention', 'sliding_attention']);
      } else {
        expect(pruned.config.max_window_layers).toBe(1); // of the kept 0, 2, 3, 5 only layer 0 was below 2
        expect(pruned.config.layer_types).toBeNull();
      }
      const a = original.logits(input, { skipLayers: [1, 4] });
      const b = pruned.logits(input);
      expect(diff(a, b)).toBeLessThan(1e-5);
      const dir = join(mkdtempSync(join(tmpdir(), 'deepen-prune-')), 'ckpt');
      await saveCheckpoint(pruned, dir);
      const reloaded = loadCheckpoint(dir);
      expect([...reloaded.params.keys()].filter((n) => n.endsWith('.bias'))).toHaveLength(4 * 3);
      const c = reloaded.logits(input);
      expect(diff(b, c)).toBe(0);
      tf.dispose([a, b, c]);
      [original, pruned, reloaded].forEach((m) => m.dispose());
    }
  });

  it('recomputes LNS factors from the new depths when asked, and survives save and load', async () => {
    const original = model('lns');
    const kept = applyPlan(original, removeLayersPlan([0], 6));
    const recomputed = applyPlan(original, removeLayersPlan([0], 6), { depths: 'recompute' });
    expect(recomputed.config.deepen.layer_depths).toBeUndefined();
    expect(recomputed.plan(0).normScale).toBe(1); // layer 1 of the original is now at depth 1
    expect(kept.plan(0).normScale).toBeCloseTo(1 / Math.SQRT2, 12);
    const a = kept.logits(input);
    const b = recomputed.logits(input);
    expect(diff(a, b)).toBeGreaterThan(1e-4);
    const dir = join(mkdtempSync(join(tmpdir(), 'deepen-prune-')), 'pruned');
    await saveCheckpoint(kept, dir);
    const loaded = loadCheckpoint(dir);
    expect(loaded.config.deepen.layer_depths).toEqual([2, 3, 4, 5, 6]);
    const c = loaded.logits(input);
    expect(diff(a, c)).toBe(0);
    tf.dispose([a, b, c]);
    [original, kept, recomputed, loaded].forEach((m) => m.dispose());
  });
});

describe('plans', () => {
  it('Block Influence removes the layers that do nothing', () => {
    const m = model('pre');
    identityAt(m, [2, 4]);
    const plan = blockInfluencePlan(diagnostics(m), 2);
    expect(plan.remove).toEqual([2, 4]);
    expect(plan.method).toBe('block-influence');
    m.dispose();
  });

  it('angular distance removes the closest block of n layers and never the last layer', () => {
    const m = model('pre');
    identityAt(m, [3, 4, 5]);
    const d = diagnostics(m);
    const plan = angularPlan(d, 2);
    expect(plan.remove).toEqual([3, 4]); // [4, 5] would also be free, but the last layer stays
    expect(plan.detail.distance as number).toBeCloseTo(0, 3);
    expect(() => angularPlan(d, 6)).toThrow(/n must be an integer in \[1, 5\]/);
    m.dispose();
  });

  it('rejects plans that make no sense', () => {
    expect(() => removeLayersPlan([6], 6)).toThrow('layer 6 is outside 0..5');
    expect(() => removeLayersPlan([], 6)).toThrow(/removes no layer/);
    expect(() => removeLayersPlan([0, 1, 2], 3)).toThrow(/removes all 3 layers/);
  });
});
