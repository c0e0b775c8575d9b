import * as tf from '@tensorflow/tfjs';
import { makeConfig, type LlamaConfig } from '../src/index.js';

/** A model small enough for finite differences, with GQA (4 query heads, 2 kv heads). */
export function tinyConfig(norm: string, overrides: Partial<LlamaConfig> = {}): LlamaConfig {
  return makeConfig({
    vocab_size: 16,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 32,
    ...overrides,
    deepen: { norm_scheme: norm, ...(overrides.deepen ?? {}) },
  });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

export function ids(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, undefined, 'int32');
}
