import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/index.js';

/**
 * The fixtures were written by test/fixtures/generate_hf_reference.py: a PyTorch
 * re-implementation of transformers' LlamaForCausalLM forward (RMSNorm, HF rotary halves,
 * repeat_kv GQA, SwiGLU) on random weights, with its logits and loss saved beside them.
 */
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}/`, import.meta.url));

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

for (const name of ['hf-tiny-llama', 'hf-tiny-llama-tied']) {
  describe(`Hugging Face LLaMA checkpoint ${name}`, () => {
    it('loads as a Pre-LN model and reproduces the reference logits and loss', () => {
      const expected = JSON.parse(readFileSync(`${fixture(name)}expected.json`, 'utf8')) as { input_ids: number[][]; logits: number[][][]; loss: number };
      const model = loadCheckpoint(fixture(name));
      expect(model.scheme.name).toBe('pre');
      const ids = tf.tensor2d(expected.input_ids, undefined, 'int32');
      const logits = model.logits(ids);
      const got = logits.arraySync();
      let maxError = 0;
      expected.logits.forEach((seq, b) => seq.forEach((row, t) => row.forEach((v, k) => (maxError = Math.max(maxError, Math.abs(v - got[b]![t]![k]!))))));
      expect(maxError).toBeLessThan(2e-5);
      const loss = model.loss(ids);
      expect(loss.dataSync()[0]).toBeCloseTo(expected.loss, 5);
      tf.dispose([ids, logits, loss]);
      model.dispose();
    });
  });
}
