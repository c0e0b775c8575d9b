import { Rng } from '@deepen/core';
import { BatchIterator, SequenceSet, type TokenizedSplit } from '@deepen/data';
import { LlamaModel, makeConfig } from '@deepen/models';

/** Documents of a learnable pattern (each token predicts the next: t -> (3t + 1) mod 32), varied lengths. */
export function syntheticSplit(documents: number, seed = 0): TokenizedSplit {
  const rng = Rng.fromSeed(seed);
  const lengths = Array.from({ length: documents }, () => 5 + rng.int(20));
  const offsets = new Float64Array(documents + 1);
  lengths.forEach((l, i) => (offsets[i + 1] = offsets[i]! + l));
  const tokens = new Uint16Array(offsets[documents]!);
  lengths.forEach((l, d) => {
    let t = 4 + rng.int(28);
    for (let j = 0; j < l; j++) {
      tokens[offsets[d]! + j] = t;
      t = 4 + ((3 * t + 1) % 28);
    }
  });
  return { tokens, offsets };
}

export function tinyModel(norm = 'lns', seed = 1): LlamaModel {
  return LlamaModel.create(
    makeConfig({ vocab_size: 32, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, deepen: { norm_scheme: norm } }),
    { seed },
  );
}

export function sequences(mode: 'packed' | 'document' = 'packed', documents = 60, seed = 0): SequenceSet {
  return new SequenceSet(syntheticSplit(documents, seed), { mode, seqLen: 12, bos: 1, eos: 2, pad: 3 });
}

export function loader(set: SequenceSet, batchSize: number, options: { shuffle?: boolean; seed?: number } = {}): BatchIterator {
  return new BatchIterator(set, batchSize, { seed: options.seed ?? 5, shuffle: options.shuffle ?? true });
}
