import * as tf from '@tensorflow/tfjs';

/**
 * Keys and values of every layer for the positions already processed, so generation feeds
 * only the new token each step. Tensors are [batch, kvHeads, positions, headDim].
 */
export class KVCache {
  private readonly entries: Array<{ k: tf.Tensor4D; v: tf.Tensor4D } | null>;
  /** Positions stored so far (the next token's position). */
  length = 0;

  constructor(numLayers: number) {
    this.entries = new Array(numLayers).fill(null);
  }

  get(layer: number): { k: tf.Tensor4D; v: tf.Tensor4D } | null {
    return this.entries[layer] ?? null;
  }

  /** Replaces a layer's entry; the new tensors are kept alive beyond any tidy scope. */
  set(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): void {
    const old = this.entries[layer];
    this.entries[layer] = { k: tf.keep(k), v: tf.keep(v) };
    if (old) tf.dispose([old.k, old.v]);
  }

  dispose(): void {
    for (const e of this.entries) if (e) tf.dispose([e.k, e.v]);
    this.entries.fill(null);
    this.length = 0;
  }
}
