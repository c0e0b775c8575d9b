import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { trainByteLevelBpe, type TrainBpeOptions } from './bpe-trainer.js';
import { cacheDir } from '@deepen/core';
import { stateOfTheUnion, type Corpus } from './corpus.js';
import { Tokenizer } from './tokenizer.js';

/** Trains a byte-level BPE tokenizer on a corpus's training split. */
export function trainTokenizer(corpus: Corpus, options: TrainBpeOptions): Tokenizer {
  return Tokenizer.fromJSON(trainByteLevelBpe(corpus.train.map((d) => d.text), options), `tokenizer trained on ${corpus.name}`);
}

export interface CachedTokenizerOptions {
  vocabSize?: number;
  cacheDir?: string;
}

/**
 * A tokenizer trained on `corpus` (default: the built-in State of the Union training split),
 * cached on disk by corpus, vocabulary size and trainer version so it is trained once.
 */
export function cachedTokenizer(corpus: Corpus = stateOfTheUnion(), options: CachedTokenizerOptions = {}): { tokenizer: Tokenizer; path: string; trained: boolean } {
  const vocabSize = options.vocabSize ?? 4096;
  const dir = join(options.cacheDir ?? cacheDir(), 'tokenizers');
  const path = join(dir, `${corpus.name}-bpe${vocabSize}-v1-${corpus.fingerprint.slice(0, 16)}.json`);
  if (existsSync(path)) {
    try {
      return { tokenizer: Tokenizer.fromFile(path), path, trained: false };
    } catch {
      // A damaged cache entry is rebuilt below rather than trusted.
    }
  }
  const tokenizer = trainTokenizer(corpus, { vocabSize });
  tokenizer.save(path);
  return { tokenizer, path, trained: true };
}
