import * as tf from '@tensorflow/tfjs';
import { Rng } from '@deepen/core';
import { tidyValues } from '@deepen/backend';
import { KVCache } from './kv-cache.js';
import type { LlamaModel } from './model.js';

export interface GenerateOptions {
  /** Most tokens to add after the prompt. */
  maxNewTokens: number;
  /** 0 (default) decodes greedily; above 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Sample only among the k most likely tokens (0 or undefined: no limit). */
  topK?: number;
  /** Sample only among the most likely tokens whose probabilities sum to p (1: no limit). */
  topP?: number;
  /**
   * Stop after this token (or any of these). Default: the model's end-of-sequence ids (all of
   * them when config.json lists several, as Llama 3.1 does); null never stops early.
   */
  eosTokenId?: number | number[] | null;
  /** Seed or generator for sampling. */
  seed?: number | string;
  rng?: Rng;
  /** Recompute every position each step instead of using the KV cache (for checking the cache). */
  noCache?: boolean;
  /**
   * The KV cache's storage (KVCacheOptions.storage): 'auto' (default) decodes on arrays through
   * the native engine's decode kernels where it can; 'tensors' always through tfjs ops.
   */
  cacheStorage?: 'auto' | 'tensors';
  /** Called with each new token and its logits (a copy) as soon as it is chosen. */
  onToken?: (token: number, logits: Float32Array) => void;
}

export interface GenerateResult {
  /** The new tokens (prompt excluded). */
  tokens: number[];
  finishReason: 'eos' | 'length';
}

/** Picks the next token from one position's logits. Exported for tests. */
export function sampleToken(logits: Float32Array, options: Pick<GenerateOptions, 'temperature' | 'topK' | 'topP'>, rng: Rng): number {
  const temperature = options.temperature ?? 0;
  if (temperature < 0) throw new Error(`temperature must be >= 0, got ${temperature}`);
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if ((logits[i] as number) > (logits[best] as number)) best = i;
    return best;
  }
  const order = Array.from(logits.keys()).sort((a, b) => (logits[b] as number) - (logits[a] as number));
  const topK = options.topK && options.topK > 0 ? Math.min(options.topK, order.length) : order.length;
  const kept = order.slice(0, topK);
  const max = logits[kept[0] as number] as number;
  const weights = kept.map((i) => Math.exp(((logits[i] as number) - max) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let probs = weights.map((w) => w / total);
  const topP = options.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new Error(`topP must be in (0, 1], got ${topP}`);
  if (topP < 1) {
    let cumulative = 0;
    let cut = probs.length;
    for (let i = 0; i < probs.length; i++) {
      cumulative += probs[i] as number;
      if (cumulative >= topP) {
        cut = i + 1;
        break;
      }
    }
    const kept2 = probs.slice(0, cut);
    const sum = kept2.reduce((a, b) => a + b, 0);
    probs = kept2.map((p) => p / sum);
  }
  let u = rng.float();
  for (let i = 0; i < probs.length; i++) {
    u -= probs[i] as number;
    if (u < 0) return kept[i] as number;
  }
  return kept[probs.length - 1] as number;
}

/** The last position's logits of [1, T, V] logits, the tensor disposed. */
function lastRow(logits: tf.Tensor3D): Float32Array {
  try {
    return tidyValues(() => tf.reshape(tf.slice(logits, [0, logits.shape[1] - 1, 0], [1, 1, -1]), [-1])) as Float32Array;
  } finally {
    logits.dispose();
  }
}

/** Continues a prompt token by token (batch of one). */
export function generate(model: LlamaModel, prompt: number[], options: GenerateOptions): GenerateResult {
  if (prompt.length === 0) throw new Error('generate: the prompt is empty');
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0) throw new Error(`generate: maxNewTokens must be a non-negative integer`);
  const limit = model.config.max_position_embeddings;
  if (prompt.length + options.maxNewTokens > limit) {
    throw new Error(`generate: prompt (${prompt.length}) + maxNewTokens (${options.maxNewTokens}) exceeds max_position_embeddings (${limit})`);
  }
  const given = options.eosTokenId === undefined ? (model.config.eos_token_ids ?? model.config.eos_token_id) : options.eosTokenId;
  const eos = new Set(given === null ? [] : Array.isArray(given) ? given : [given]);
  const rng = options.rng ?? Rng.fromSeed(options.seed ?? 0);
  // Room for every position at once: the cache's arrays never grow during the loop.
  const cache = options.noCache
    ? null
    : new KVCache(model.config.num_hidden_layers, { capacity: prompt.length + Math.max(1, options.maxNewTokens), storage: options.cacheStorage ?? 'auto' });
  const sequence = [...prompt];
  const tokens: number[] = [];
  // Without onToken nothing outlives a step's logits: one array serves every step.
  const scratch = options.onToken ? undefined : new Float32Array(model.config.vocab_size);
  try {
    let feed = prompt;
    while (tokens.length < options.maxNewTokens) {
      const last = cache ? model.decodeLogits(feed, cache, scratch) : lastRow(model.logits([sequence]));
      const token = sampleToken(last, options, rng);
      tokens.push(token);
      sequence.push(token);
      options.onToken?.(token, last);
      if (eos.has(token)) return { tokens, finishReason: 'eos' };
      feed = [token];
    }
    return { tokens, finishReason: 'length' };
  } finally {
    cache?.dispose();
  }
}
