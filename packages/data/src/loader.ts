import { Rng } from '@deepen/core';
import type { SequenceSource } from './packing.js';

/** Everything needed to resume a loader exactly: small, plain JSON. */
export interface LoaderState {
  seed: number;
  /** Epochs completed so far. */
  epoch: number;
  /** Sequences of the current epoch already served. */
  position: number;
  /** Size of the sequence set it was made for (a different set cannot resume it). */
  sequences: number;
  shuffle: boolean;
}

/** One batch: row-major [batchSize, seqLen] arrays. */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  /** 1 where the target counts, 0 at padding. */
  mask: Float32Array;
  batchSize: number;
  seqLen: number;
  /** Sequence indices in this batch (for tests and debugging). */
  indices: number[];
}

/**
 * Serves batches of sequences forever, in a seeded order reshuffled every epoch. The state
 * is (seed, epoch, position): a loader rebuilt from `state()` serves exactly the batches the
 * original would have served next.
 */
export class BatchIterator {
  private order: Uint32Array | null = null;
  private current: LoaderState;

  constructor(
    private readonly sequences: SequenceSource,
    readonly batchSize: number,
    options: { seed?: number; shuffle?: boolean; state?: LoaderState } = {},
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
    if (sequences.count === 0) throw new Error(`no training sequences: the data is shorter than one sequence of ${sequences.seqLen} tokens`);
    if (options.state) {
      const s = options.state;
      if (s.sequences !== sequences.count) {
        throw new Error(`loader state is for ${s.sequences} sequences but the data has ${sequences.count} (different data, tokenizer or sequence length)`);
      }
      if (!(Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.position) && s.position >= 0 && s.position <= s.sequences)) {
        throw new Error(`invalid loader state ${JSON.stringify(s)}`);
      }
      this.current = { ...s };
    } else {
      this.current = { seed: options.seed ?? 0, epoch: 0, position: 0, sequences: sequences.count, shuffle: options.shuffle ?? true };
    }
  }

  state(): LoaderState {
    return { ...this.current };
  }

  /** Tokens per sequence. */
  get seqLen(): number {
    return this.sequences.seqLen;
  }

  private orderFor(epoch: number): Uint32Array {
    if (!this.order) {
      this.order = this.current.shuffle
        ? Rng.fromSeed(this.current.seed).fork(`epoch-${epoch}`).permutation(this.sequences.count)
        : Uint32Array.from({ length: this.sequences.count }, (_, i) => i);
    }
    return this.order;
  }

  next(): Batch {
    const T = this.sequences.seqLen;
    const B = this.batchSize;
    const batch: Batch = { inputs: new Int32Array(B * T), targets: new Int32Array(B * T), mask: new Float32Array(B * T), batchSize: B, seqLen: T, indices: [] };
    for (let row = 0; row < B; row++) {
      if (this.current.position >= this.sequences.count) {
        this.current.epoch += 1;
        this.current.position = 0;
        this.order = null;
      }
      const index = this.orderFor(this.current.epoch)[this.current.position] as number;
      this.current.position += 1;
      batch.indices.push(index);
      this.sequences.fill(index, row, batch.inputs, batch.targets, batch.mask);
    }
    return batch;
  }
}

/** Batches over a whole sequence set in order (for evaluation), the last one possibly smaller; `maxSequences` caps the budget. */
export function* sequentialBatches(sequences: SequenceSource, batchSize: number, maxSequences = Infinity): Generator<Batch> {
  const T = sequences.seqLen;
  const total = Math.min(sequences.count, maxSequences);
  for (let start = 0; start < total; start += batchSize) {
    const B = Math.min(batchSize, total - start);
    const batch: Batch = { inputs: new Int32Array(B * T), targets: new Int32Array(B * T), mask: new Float32Array(B * T), batchSize: B, seqLen: T, indices: [] };
    for (let row = 0; row < B; row++) {
      batch.indices.push(start + row);
      sequences.fill(start + row, row, batch.inputs, batch.targets, batch.mask);
    }
    yield batch;
  }
}
