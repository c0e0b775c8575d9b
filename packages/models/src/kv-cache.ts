import * as tf from '@tensorflow/tfjs';

export interface KVCacheOptions {
  /**
   * Where the keys and values live. 'auto' (the default): on the native engine with a batch of
   * one, in arrays preallocated per layer that the model writes in place (no tensor, no copy
   * of the cache per step); on any other engine or batch, in tensors. 'tensors': in tensors
   * everywhere, i.e. decoding through tfjs ops (the reference the array path is checked and
   * measured against).
   */
  storage?: 'auto' | 'tensors';
  /**
   * Positions the arrays make room for at once (they double when a forward needs more);
   * generate() passes prompt + new tokens. Default 64.
   */
  capacity?: number;
}

/**
 * One layer's keys and values in array storage: rotated keys [kvHeads, headDim, capacity]
 * (transposed, position p in column p, so a query's scores are a matrix-vector product over
 * contiguous rows) and values [kvHeads, capacity, headDim].
 */
export interface LayerArrays {
  k: Float32Array;
  v: Float32Array;
  capacity: number;
}

/**
 * Keys and values of every layer for the positions already processed, so generation feeds
 * only the new token each step. A cache settles on one storage at its first forward (see
 * KVCacheOptions.storage): tensors [batch, kvHeads, positions, headDim], replaced every step
 * (get / set), or per-layer arrays written in place (layerArrays, LayerArrays).
 */
export class KVCache {
  private readonly entries: Array<{ k: tf.Tensor4D; v: tf.Tensor4D } | null>;
  private readonly arrays: Array<LayerArrays | null>;
  private settled: 'tensors' | 'arrays' | null = null;
  private readonly reserve: number;
  readonly storage: 'auto' | 'tensors';
  /** Positions stored so far (the next token's position). */
  length = 0;

  constructor(numLayers: number, options: KVCacheOptions = {}) {
    if (!Number.isInteger(numLayers) || numLayers < 1) throw new Error(`KVCache: numLayers must be a positive integer, got ${numLayers}`);
    const capacity = options.capacity ?? 64;
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`KVCache: capacity must be a positive integer, got ${capacity}`);
    const storage = options.storage ?? 'auto';
    if (storage !== 'auto' && storage !== 'tensors') throw new Error(`KVCache: storage must be 'auto' or 'tensors', got '${String(storage)}'`);
    this.entries = new Array(numLayers).fill(null);
    this.arrays = new Array(numLayers).fill(null);
    this.reserve = capacity;
    this.storage = storage;
  }

  /** The storage this cache settled on at its first forward; null before it. */
  get layout(): 'tensors' | 'arrays' | null {
    return this.settled;
  }

  /**
   * Settles the storage (the model does this at each forward). A cache holds one kind for its
   * whole life: the other kind would not see the positions stored so far.
   */
  settle(layout: 'tensors' | 'arrays'): void {
    if (layout === 'arrays' && this.storage === 'tensors') throw new Error("KVCache: this cache was made with storage 'tensors' and cannot hold arrays");
    if (this.settled !== null && this.settled !== layout) {
      throw new Error(
        `KVCache: this cache holds ${this.settled} (${this.length} positions) and cannot continue as ${layout}; ` +
          (this.settled === 'arrays' ? 'arrays serve the native engine with a batch of one only' : 'start a new cache'),
      );
    }
    this.settled = layout;
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

  /**
   * A layer's arrays with room for `positions` positions, made at the first call and grown by
   * doubling (the stored positions copied over) when a forward needs more.
   */
  layerArrays(layer: number, kvHeads: number, headDim: number, positions: number): LayerArrays {
    if (layer < 0 || layer >= this.arrays.length) throw new Error(`KVCache: layer ${layer} is outside 0..${this.arrays.length - 1}`);
    const current = this.arrays[layer];
    if (current && current.k.length !== kvHeads * current.capacity * headDim) {
      throw new Error(`KVCache: layer ${layer} holds arrays for another shape than ${kvHeads} kv heads of ${headDim}`);
    }
    if (current && positions <= current.capacity) return current;
    // A multiple of 16 positions: every key row then starts on a 64-byte boundary like the first.
    const capacity = Math.ceil(Math.max(positions, current ? 2 * current.capacity : this.reserve) / 16) * 16;
    const grown: LayerArrays = { k: new Float32Array(kvHeads * capacity * headDim), v: new Float32Array(kvHeads * capacity * headDim), capacity };
    if (current) {
      // Stored positions keep their place: the first `length` columns of each key row, the
      // first `length` rows of each head's values.
      const used = this.length;
      for (let row = 0; row < kvHeads * headDim; row++) grown.k.set(current.k.subarray(row * current.capacity, row * current.capacity + used), row * capacity);
      for (let h = 0; h < kvHeads; h++) grown.v.set(current.v.subarray(h * current.capacity * headDim, (h * current.capacity + used) * headDim), h * capacity * headDim);
    }
    this.arrays[layer] = grown;
    return grown;
  }

  dispose(): void {
    for (const e of this.entries) if (e) tf.dispose([e.k, e.v]);
    this.entries.fill(null);
    this.arrays.fill(null);
    this.settled = null;
    this.length = 0;
  }
}
