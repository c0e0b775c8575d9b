import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@deepen/backend';
import { BatchIterator, sequentialBatches, SftSequences } from '@deepen/data';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateLoss, Trainer } from '../src/index.js';
import { sequences, tinyModel } from './helpers.js';

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

describe('evaluateLoss', () => {
  it('matches loss and token accuracy computed by hand over the counted positions only', () => {
    const model = tinyModel('lns', 4);
    const set = sequences('document', 5, 2); // padded rows: the mask must keep padding out
    let lossSum = 0;
    let hits = 0;
    let counted = 0;
    for (const batch of sequentialBatches(set, 8)) {
      const logits = tf.tidy(() => model.logits(tf.tensor2d(batch.inputs, [batch.batchSize, batch.seqLen], 'int32')).arraySync());
      for (let b = 0; b < batch.batchSize; b++) {
        for (let t = 0; t < batch.seqLen; t++) {
          const i = b * batch.seqLen + t;
          if (batch.mask[i] === 0 || batch.targets[i] === -100) continue;
          const row = logits[b]![t]!;
          const max = Math.max(...row);
          lossSum += max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) - row[batch.targets[i]!]!;
          hits += row.indexOf(max) === batch.targets[i] ? 1 : 0;
          counted++;
        }
      }
    }
    const before = tf.memory().numTensors;
    const result = evaluateLoss(model, set, { maxTokens: 1e6, batchSize: 2 });
    expect(tf.memory().numTensors).toBe(before);
    expect(result.tokens).toBe(counted);
    expect(result.tokens).toBe(set.tokensPerEpoch);
    expect(result.loss).toBeCloseTo(lossSum / counted, 5);
    expect(result.accuracy).toBeCloseTo(hits / counted, 6);
    expect(result.perplexity).toBeCloseTo(Math.exp(result.loss), 5);
    model.dispose();
  });
});

describe('Trainer on masked fine-tuning examples', () => {
  it('learns the completions while prompt tokens carry no loss', async () => {
    // Each example: a prompt of three tokens, then a completion that depends on the prompt's first token.
    const examples = Array.from({ length: 8 }, (_, i) => [
      { ids: [1, 4 + i, 20, 21], loss: false },
      { ids: [12 + (i % 4), 28, 2], loss: true },
    ]);
    const set = new SftSequences(examples, { maxSeqLen: 16, pad: 3 });
    const model = tinyModel('lns', 2);
    const trainer = new Trainer({ model, train: new BatchIterator(set, 4, { seed: 0 }), validation: set }, { steps: 60, lr: 2e-2, warmup: 5, evalEvery: 20, evalTokens: 1e6 });
    const evals: Array<{ accuracy: number; tokens: number }> = [];
    trainer.on('eval', (e) => evals.push(e));
    await trainer.run();
    expect(evals.map((e) => e.tokens)).toEqual([24, 24, 24]); // 3 trained tokens per example, nothing from prompts
    expect(evals.at(-1)!.accuracy).toBe(1);
    trainer.dispose();
    model.dispose();
  });
});
