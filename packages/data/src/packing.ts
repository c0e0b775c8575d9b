import type { TokenizedSplit } from './token-cache.js';

/**
 * 'packed': documents joined (each ends with EOS) and cut into fixed-length sequences, as most
 * pretraining does. 'document': one sequence per document, truncated or padded, with a loss
 * mask, as the paper's runs did.
 */
export type PackingMode = 'packed' | 'document';

export interface PackingOptions {
  seqLen: number;
  mode: PackingMode;
  /** Prepended to every document when not null. */
  bos: number | null;
  /** Appended to every document. */
  eos: number;
  /** Input id at padded positions (document mode). */
  pad: number;
  /** Target id at positions that do not count. Default -100. */
  ignoreIndex?: number;
}

/**
 * Anything that serves fixed-length training sequences by index: the packed / document
 * sequences of a corpus, or masked supervised fine-tuning examples. Loaders, the trainer and
 * evaluation only ever use these three members.
 */
export interface SequenceSource {
  /** Number of sequences. */
  readonly count: number;
  /** Tokens per sequence (the width of every batch row). */
  readonly seqLen: number;
  /**
   * Writes sequence `index` into row `row` of [batch, seqLen] buffers: input ids, target ids
   * (the ignore index where nothing is predicted) and a mask (1 where the target counts).
   */
  fill(index: number, row: number, inputs: Int32Array, targets: Int32Array, mask: Float32Array): void;
}

/** Fixed-length training sequences over a tokenized split, read on demand. */
export class SequenceSet implements SequenceSource {
  readonly count: number;
  private readonly stream: Uint32Array | null = null;
  private readonly ignore: number;

  constructor(
    private readonly split: TokenizedSplit,
    readonly options: PackingOptions,
  ) {
    if (!Number.isInteger(options.seqLen) || options.seqLen < 1) throw new Error(`seqLen must be a positive integer, got ${options.seqLen}`);
    this.ignore = options.ignoreIndex ?? -100;
    const documents = split.offsets.length - 1;
    if (options.mode === 'packed') {
      const extra = (options.bos === null ? 0 : 1) + 1;
      const stream = new Uint32Array(split.tokens.length + documents * extra);
      let at = 0;
      for (let d = 0; d < documents; d++) {
        if (options.bos !== null) stream[at++] = options.bos;
        stream.set(split.tokens.subarray(split.offsets[d] as number, split.offsets[d + 1] as number), at);
        at += (split.offsets[d + 1] as number) - (split.offsets[d] as number);
        stream[at++] = options.eos;
      }
      this.stream = stream;
      // Sequence i reads stream[i*T .. i*T + T] (T + 1 tokens): inputs and the targets shifted by one.
      this.count = Math.max(0, Math.floor((stream.length - 1) / options.seqLen));
    } else {
      this.count = documents;
    }
  }

  get seqLen(): number {
    return this.options.seqLen;
  }

  /** Tokens the model trains on per epoch (targets that count). */
  get tokensPerEpoch(): number {
    if (this.options.mode === 'packed') return this.count * this.options.seqLen;
    let total = 0;
    const extra = this.options.bos === null ? 0 : 1;
    for (let d = 0; d < this.count; d++) {
      const length = (this.split.offsets[d + 1] as number) - (this.split.offsets[d] as number) + extra + 1;
      total += Math.min(length - 1, this.options.seqLen);
    }
    return total;
  }

  /** Writes sequence `index` into row `row` of the batch buffers. */
  fill(index: number, row: number, inputs: Int32Array, targets: Int32Array, mask: Float32Array): void {
    const T = this.options.seqLen;
    const base = row * T;
    if (this.stream) {
      const start = index * T;
      for (let t = 0; t < T; t++) {
        inputs[base + t] = this.stream[start + t] as number;
        targets[base + t] = this.stream[start + t + 1] as number;
        mask[base + t] = 1;
      }
      return;
    }
    const { bos, eos, pad } = this.options;
    const begin = this.split.offsets[index] as number;
    const docLength = (this.split.offsets[index + 1] as number) - begin;
    const lead = bos === null ? 0 : 1;
    // The document as the model sees it, [bos] tokens eos, cut to T + 1 tokens.
    const length = Math.min(lead + docLength + 1, T + 1);
    const at = (p: number) => (p < lead ? (bos as number) : p - lead < docLength ? (this.split.tokens[begin + p - lead] as number) : eos);
    for (let t = 0; t < T; t++) {
      const real = t + 1 < length;
      inputs[base + t] = t < length ? at(t) : pad;
      targets[base + t] = real ? at(t + 1) : this.ignore;
      mask[base + t] = real ? 1 : 0;
    }
  }
}
