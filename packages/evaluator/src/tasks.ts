import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, tidyValues } from '@deepen/backend';
import { Rng, type ClozeResult, type MultipleChoiceResult } from '@deepen/core';
import { encodeCompletionPrompt, type Document, type Tokenizer } from '@deepen/data';
import type { LlamaModel } from '@deepen/models';

/** A multiple-choice item in the style of lm-evaluation-harness. */
export interface MultipleChoiceItem {
  context: string;
  choices: string[];
  /** Index of the right choice. */
  gold: number;
}

export interface ContinuationScore {
  /** Sum of log-probabilities of the continuation tokens given the context. */
  logprob: number;
  /** Whether every continuation token is the model's most likely next token. */
  greedy: boolean;
  tokens: number;
}

/**
 * Scores continuations given contexts in batches (one forward per batch): log-probability and
 * greedy match. Context is cut from the left to fit the model's positions.
 */
export function scoreContinuations(model: LlamaModel, pairs: Array<{ context: number[]; continuation: number[] }>, batchSize = 8, skipLayers?: number[]): ContinuationScore[] {
  const limit = model.config.max_position_embeddings;
  const out: ContinuationScore[] = [];
  for (let i = 0; i < pairs.length; i += batchSize) {
    const group = pairs.slice(i, i + batchSize).map(({ context, continuation }) => {
      if (continuation.length === 0) throw new Error('a continuation has no tokens');
      const all = [...context, ...continuation].slice(-(limit + 1));
      return { all, contStart: all.length - continuation.length };
    });
    const T = Math.max(...group.map((g) => g.all.length)) - 1;
    const inputs = new Int32Array(group.length * T);
    // The token each position should predict (0 where a row is padding; never read there).
    const next = new Int32Array(group.length * T);
    group.forEach((g, row) => {
      g.all.slice(0, -1).forEach((id, t) => (inputs[row * T + t] = id));
      g.all.slice(1).forEach((id, t) => (next[row * T + t] = id));
    });
    const logits = tf.tidy(() => model.logits(tf.tensor2d(inputs, [group.length, T], 'int32'), skipLayers ? { skipLayers } : {}));
    // Only each next token's log-probability (minus its cross-entropy, fused where the engine has
    // it) and the argmax leave the engine, as flat typed arrays: reading the whole
    // [batch, T, vocab] log-softmax as nested arrays (arraySync) out of a tidy made tfjs walk
    // every element and was most of an analysis's time.
    const picked = tidyValues(() => tf.neg(crossEntropy(tf.reshape(logits, [group.length * T, logits.shape[2]]) as tf.Tensor2D, tf.tensor1d(next, 'int32'), -1)));
    const argmax = tidyValues(() => tf.argMax(logits, -1));
    logits.dispose();
    group.forEach((g, row) => {
      let logprob = 0;
      let greedy = true;
      for (let p = g.contStart; p < g.all.length; p++) {
        const token = g.all[p] as number;
        logprob += picked[row * T + p - 1]!;
        if (argmax[row * T + p - 1] !== token) greedy = false;
      }
      out.push({ logprob, greedy, tokens: g.all.length - g.contStart });
    });
  }
  return out;
}

export function evaluateMultipleChoice(model: LlamaModel, tokenizer: Tokenizer, items: MultipleChoiceItem[], options: { batchSize?: number; skipLayers?: number[] } = {}): MultipleChoiceResult {
  const pairs = items.flatMap((item) => {
    // Contexts framed as the model saw documents: after its BOS where it has one (Llama <s>; Qwen none).
    const context = encodeCompletionPrompt(tokenizer, item.context);
    return item.choices.map((choice) => ({ context, continuation: tokenizer.encode(choice) }));
  });
  const scores = scoreContinuations(model, pairs, options.batchSize, options.skipLayers);
  let correct = 0;
  let correctNorm = 0;
  let k = 0;
  for (const item of items) {
    const s = scores.slice(k, k + item.choices.length);
    k += item.choices.length;
    const best = (f: (x: ContinuationScore, i: number) => number) => s.reduce((b, x, i) => (f(x, i) > f(s[b]!, b) ? i : b), 0);
    if (best((x) => x.logprob) === item.gold) correct++;
    if (best((x, i) => x.logprob / Math.max(1, Buffer.byteLength(item.choices[i]!))) === item.gold) correctNorm++;
  }
  return { accuracy: correct / items.length, accuracyNorm: correctNorm / items.length, items: items.length };
}

/** Reads a multiple-choice JSONL file: {"context": ..., "choices": [...], "gold": index} per line. */
export function loadMultipleChoice(path: string): MultipleChoiceItem[] {
  if (!existsSync(path)) throw new Error(`${path}: file not found`);
  const items: MultipleChoiceItem[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      const where = `${path}:${i + 1}`;
      let r: Partial<MultipleChoiceItem>;
      try {
        r = JSON.parse(line);
      } catch (error) {
        throw new Error(`${where}: not valid JSON (${(error as Error).message})`);
      }
      if (typeof r.context !== 'string') throw new Error(`${where}: "context" must be a string`);
      if (!Array.isArray(r.choices) || r.choices.length < 2 || !r.choices.every((c) => typeof c === 'string' && c.length > 0)) {
        throw new Error(`${where}: "choices" must list at least two non-empty strings`);
      }
      if (!(Number.isInteger(r.gold) && r.gold! >= 0 && r.gold! < r.choices.length)) throw new Error(`${where}: "gold" must be an index into "choices"`);
      items.push(r as MultipleChoiceItem);
    });
  if (items.length === 0) throw new Error(`${path}: no items`);
  return items;
}

/** A LAMBADA-style item: predict the last word of a passage. */
export interface ClozeItem {
  context: string;
  /** The last word, with its leading space. */
  target: string;
}

/**
 * Builds cloze items deterministically from held-out documents: passages of whole sentences
 * (about `contextWords` words) whose final word is alphabetic and at least four letters.
 */
export function buildClozeTask(documents: Document[], options: { items?: number; contextWords?: number; seed?: number } = {}): ClozeItem[] {
  const want = options.items ?? 200;
  const words = options.contextWords ?? 60;
  const candidates: ClozeItem[] = [];
  for (const doc of documents) {
    const sentences = doc.text.replace(/\s+/g, ' ').match(/[^.!?]+[.!?]/g) ?? [];
    let passage = '';
    for (const sentence of sentences) {
      passage += sentence;
      if (passage.split(' ').length < words) continue;
      const m = /^(.*\S)\s+([A-Za-z]{4,})[.!?]$/.exec(passage.trim());
      if (m) candidates.push({ context: m[1]!, target: ` ${m[2]}` });
      passage = '';
    }
  }
  const order = Rng.fromSeed(options.seed ?? 0).fork('cloze').permutation(candidates.length);
  return Array.from(order.subarray(0, Math.min(want, candidates.length)), (i) => candidates[i]!);
}

export function evaluateCloze(model: LlamaModel, tokenizer: Tokenizer, items: ClozeItem[], options: { batchSize?: number; skipLayers?: number[] } = {}): ClozeResult {
  const scores = scoreContinuations(
    model,
    items.map((item) => ({ context: encodeCompletionPrompt(tokenizer, item.context), continuation: tokenizer.encode(item.target) })),
    options.batchSize,
    options.skipLayers,
  );
  const tokens = scores.reduce((a, s) => a + s.tokens, 0);
  return {
    accuracy: scores.filter((s) => s.greedy).length / Math.max(1, scores.length),
    targetPerplexity: Math.exp(-scores.reduce((a, s) => a + s.logprob, 0) / Math.max(1, tokens)),
    items: items.length,
  };
}
