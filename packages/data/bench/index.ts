/**
 * 1. Tokenization throughput on the built-in corpus: deepen's byte-level BPE against
 *    Hugging Face's tokenizers.js on the same tokenizer.json (baseline).
 * 2. Batch iteration against what training consumes: tokens/s of one optimizer step of the
 *    9m shape (vocab 4096) on the best engine here (baseline) vs the loader's tokens/s.
 *    Batching must be at least 100x faster than training.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { compare } from '@deepen/tooling/bench';
import { initBackend } from '@deepen/backend';
import { LlamaModel, presetConfig } from '@deepen/models';
import { BatchIterator, cachedTokenizer, SequenceSet, stateOfTheUnion, tokenizeCorpus, Tokenizer } from '../src/index.js';

const quick = process.env.DEEPEN_BENCH_QUICK === '1';
const corpus = stateOfTheUnion();
const cacheDir = mkdtempSync(join(tmpdir(), 'deepen-bench-'));
const { tokenizer } = cachedTokenizer(corpus, { vocabSize: 4096, cacheDir });
const texts = corpus.validation.slice(0, quick ? 3 : corpus.validation.length).map((d) => d.text);
const megabytes = texts.reduce((a, t) => a + Buffer.byteLength(t), 0) / 1e6;

await compare(`tokenization, ${megabytes.toFixed(2)} MB of State of the Union text, vocab 4096, cold word cache`, {
  unit: 'MB',
  minRuns: 2,
  baseline: {
    name: 'tokenizers.js',
    work: megabytes,
    fn: () => {
      const t = Tokenizer.fromJSON(tokenizer.toJSON(), 'bench', { engine: 'tokenizers.js' });
      for (const text of texts) t.encode(text);
    },
  },
  candidates: [
    {
      name: 'deepen byte-level BPE',
      work: megabytes,
      fn: () => {
        const t = Tokenizer.fromJSON(tokenizer.toJSON(), 'bench');
        for (const text of texts) t.encode(text);
      },
    },
  ],
});

const tokenized = await tokenizeCorpus(corpus, tokenizer, { cacheDir });
const seqLen = 256;
const sequences = new SequenceSet(tokenized.train, { mode: 'packed', seqLen, bos: null, eos: tokenizer.special.eos ?? 2, pad: tokenizer.special.pad ?? 0 });
const loader = new BatchIterator(sequences, 8, { seed: 0 });

const report = await initBackend();
const trainBatch = quick ? 1 : 2;
const model = LlamaModel.create(presetConfig('9m', { vocab_size: tokenizer.vocabSize }), { seed: 0 });
const optimizer = tf.train.adam(1e-3);
const trainLoader = new BatchIterator(sequences, trainBatch, { seed: 1 });

const results = await compare(`batching vs training, 9m shape, vocab ${tokenizer.vocabSize}, ${seqLen} tokens per sequence (training on ${report.engine})`, {
  unit: 'tokens',
  warmup: 1,
  minRuns: quick ? 1 : 3,
  minTimeMs: quick ? 0 : 1000,
  baseline: {
    name: `training step, batch ${trainBatch}`,
    work: trainBatch * seqLen,
    fn: () => {
      const batch = trainLoader.next();
      tf.tidy(() => {
        const inputs = tf.tensor2d(batch.inputs, [batch.batchSize, seqLen], 'int32');
        const targets = tf.tensor2d(batch.targets, [batch.batchSize, seqLen], 'int32');
        optimizer.minimize(() => model.loss(inputs, { targets }));
      });
    },
  },
  candidates: [{ name: 'loader.next(), batch 8', work: 8 * seqLen, fn: () => loader.next() }],
});
const ratio = results[1]!.speedup; // throughput ratio: tokens served per second / tokens trained per second
console.log(`batching supplies tokens ${ratio.toFixed(0)}x faster than training consumes them (requirement: >= 100x): ${ratio >= 100 ? 'ok' : 'TOO SLOW'}`);
model.dispose();
optimizer.dispose();
