import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@deepen/core';
import { mobyDick, Tokenizer, trainByteLevelBpe } from '@deepen/data';
import { LlamaModel, makeConfig, type LlamaConfig } from '@deepen/models';

/**
 * Test models whose every weight matters: linears with std 0.2 (a model that barely uses
 * attention would hide a missing q/k permutation: the loss moved only 3e-4 in the trial that
 * found it) and norm weights spread around 1, so that reading a norm, bias or head wrongly
 * changes the loss.
 */

export const tempDir = (prefix = 'deepen-gguf-') => mkdtempSync(join(tmpdir(), prefix));

const TEXTS = mobyDick()
  .slice(1, 6)
  .map((d) => d.text);

let cachedTokenizer: Tokenizer | null = null;
/** A byte-level BPE tokenizer of 512 tokens trained on Moby-Dick, as deepen trains them (<unk>, <s>, </s>, <pad> first). */
export function tokenizer(): Tokenizer {
  cachedTokenizer ??= Tokenizer.fromJSON(trainByteLevelBpe(TEXTS, { vocabSize: 512 }));
  return cachedTokenizer;
}

/** `count` token ids of real text, starting with the BOS token (as deepen frames documents). */
export function textTokens(count: number, t: Tokenizer = tokenizer()): number[] {
  const ids = [t.special.bos ?? 1, ...t.encode(TEXTS.slice(1).join('\n\n').slice(0, count * 8))];
  if (ids.length < count) throw new Error(`fixture text gives only ${ids.length} tokens`);
  return ids.slice(0, count);
}

export type FixtureConfig = Partial<Omit<LlamaConfig, 'deepen'>> & { deepen?: Partial<LlamaConfig['deepen']> };

export function fixtureModel(overrides: FixtureConfig = {}, seed = 1): LlamaModel {
  const config = makeConfig({
    vocab_size: 512,
    hidden_size: 64,
    intermediate_size: 96,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 1024,
    initializer_range: 0.2,
    bos_token_id: 1,
    eos_token_id: 2,
    ...overrides,
    deepen: { norm_scheme: 'lns', ...(overrides.deepen ?? {}) },
  } as Parameters<typeof makeConfig>[0]);
  const model = LlamaModel.create(config, { seed });
  const rng = Rng.fromSeed(seed + 100);
  for (const [name, p] of model.params) {
    // Norms (ones at init) and biases (zeros) get spread out; gates (LayerScale) too.
    if (p.shape.length === 1) {
      const base = /norm/.test(name) ? 1 : /gate/.test(name) ? 0.5 : 0;
      const values = Float32Array.from({ length: p.size }, () => base + 0.3 * (rng.float() * 2 - 1));
      tf.tidy(() => p.assign(tf.tensor(values, p.shape)));
    }
  }
  return model;
}

/** deepen's log-probability of each next token and its top-5 ids, per position. */
export interface Scores {
  logprobs: number[];
  top5: number[][];
  /** deepen's log-probabilities of every token per position (for telling ties apart), when computed by deepen. */
  rows?: Float32Array[];
}

export function deepenScores(model: LlamaModel, tokens: number[]): Scores {
  const V = model.config.vocab_size;
  const lp = tf.tidy(() => tf.logSoftmax(model.logits([tokens])).dataSync() as Float32Array);
  const logprobs: number[] = [];
  const top5: number[][] = [];
  const rows: Float32Array[] = [];
  for (let i = 0; i < tokens.length - 1; i++) {
    const row = lp.subarray(i * V, (i + 1) * V);
    rows.push(row);
    logprobs.push(row[tokens[i + 1] as number] as number);
    top5.push(Array.from(row.keys()).sort((a, b) => (row[b] as number) - (row[a] as number)).slice(0, 5));
  }
  return { logprobs, top5, rows };
}

export interface Agreement {
  /** Largest per-position |loss gap|. */
  worstGap: number;
  /** Mean per-position |loss gap|. */
  meanGap: number;
  /** |mean loss a - mean loss b|: the gap in log-perplexity. */
  meanLossGap: number;
  top1: number;
  /**
   * Share of positions whose top-5 lists are identical. Two tokens whose log-probabilities in
   * deepen differ by at most 1e-5 are a tie, which float rounding may order either way: such
   * swaps count as identical.
   */
  top5Identical: number;
}

const TIE = 1e-5;

export function agreement(a: Scores, b: Scores): Agreement {
  const same = (i: number) => {
    const x = a.top5[i] as number[];
    const y = b.top5[i] as number[];
    const row = a.rows?.[i];
    return x.every((t, k) => t === y[k] || (row !== undefined && Math.abs((row[t] as number) - (row[y[k] as number] as number)) <= TIE));
  };
  const gaps = a.logprobs.map((v, i) => Math.abs(v - (b.logprobs[i] as number)));
  const n = gaps.length;
  return {
    worstGap: Math.max(...gaps),
    meanGap: gaps.reduce((x, y) => x + y, 0) / n,
    meanLossGap: Math.abs(a.logprobs.reduce((x, y) => x + y, 0) - b.logprobs.reduce((x, y) => x + y, 0)) / n,
    top1: a.top5.filter((t, i) => t[0] === b.top5[i]?.[0]).length / n,
    top5Identical: a.top5.filter((_, i) => same(i)).length / n,
  };
}

let trained: LlamaModel | null = null;
/**
 * A model trained briefly on Moby-Dick (GQA, 3 layers, 200 steps of 8 x 128 tokens, from the
 * usual 0.02 init): for the precision tests, since a random model's near-tied top tokens make
 * "the same top-1" a coin toss under any rounding, unlike a model that has learned something.
 */
export async function trainedModel(): Promise<LlamaModel> {
  if (trained) return trained;
  const { SequenceSet, BatchIterator } = await import('@deepen/data');
  const { Adam, trainStep } = await import('@deepen/trainer');
  const model = fixtureModel({ initializer_range: 0.02 }, 11);
  const ids = textTokens(25_000).slice(POSITIONS_HELD_OUT);
  const tokens = Uint16Array.from(ids);
  const set = new SequenceSet({ tokens, offsets: Float64Array.from([0, tokens.length]) }, { mode: 'packed', seqLen: 128, bos: null, eos: 2, pad: 0 });
  const batches = new BatchIterator(set, 8, { seed: 1 });
  const optimizer = new Adam(model.params, { kind: 'adam' });
  for (let step = 0; step < 200; step++) trainStep(model, optimizer, batches.next(), { lr: 3e-3 });
  optimizer.dispose();
  trained = model;
  return model;
}

/** The first positions of the fixture text, which the trained model never trains on. */
export const POSITIONS_HELD_OUT = 1000;
