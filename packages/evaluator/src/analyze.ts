import { sequentialBatches, SequenceSet, type Tokenizer, type TokenizedSplit } from '@deepen/data';
import type { LlamaModel } from '@deepen/models';
import type { AnalysisResult, LayerRemoval } from '@deepen/core';
import { depthDiagnostics } from './depth.js';
import { slidingWindowPerplexity } from './perplexity.js';
import { evaluateCloze, evaluateMultipleChoice, type ClozeItem, type MultipleChoiceItem } from './tasks.js';

export interface AnalyzeOptions {
  /** Held-out text, tokenized (documents back to back). */
  text: TokenizedSplit;
  /** Tokens of held-out text to use. Default 16384. */
  maxTokens?: number;
  /** Window for perplexity and sequence length for diagnostics. Default 128. */
  window?: number;
  batchSize?: number;
  cloze?: ClozeItem[];
  multipleChoice?: MultipleChoiceItem[];
  /** Re-evaluate with each single layer removed. Default true. */
  layerRemoval?: boolean;
  /** Called as each stage finishes (for progress output). */
  onProgress?: (stage: string) => void;
}

/** The held-out documents as one stream cut to `maxTokens`, each framed as in training: `[bos] doc eos` (no BOS where the model has none, as Qwen). */
function stream(text: TokenizedSplit, bos: number | null, eos: number, maxTokens: number): Uint32Array {
  const out: number[] = [];
  for (let d = 0; d + 1 < text.offsets.length && out.length < maxTokens; d++) {
    if (bos !== null) out.push(bos);
    for (let i = text.offsets[d]!; i < text.offsets[d + 1]! && out.length < maxTokens; i++) out.push(text.tokens[i]!);
    if (out.length < maxTokens) out.push(eos);
  }
  return Uint32Array.from(out);
}

/** Every measurement of the paper's analysis for one model. */
export function analyzeModel(model: LlamaModel, tokenizer: Tokenizer, options: AnalyzeOptions): AnalysisResult {
  const window = Math.min(options.window ?? 128, model.config.max_position_embeddings);
  const batchSize = options.batchSize ?? 8;
  const eos = tokenizer.special.eos ?? 0;
  const tokens = stream(options.text, tokenizer.special.bos, eos, options.maxTokens ?? 16_384);
  if (tokens.length < window + 1) throw new Error(`held-out text has ${tokens.length} tokens, fewer than one window of ${window}`);
  const progress = options.onProgress ?? (() => {});
  const measure = (skipLayers?: number[]) => ({
    perplexity: slidingWindowPerplexity(model, tokens, { window, batchSize, ...(skipLayers ? { skipLayers } : {}) }),
    cloze: options.cloze?.length ? evaluateCloze(model, tokenizer, options.cloze, { batchSize, ...(skipLayers ? { skipLayers } : {}) }) : null,
    multipleChoice: options.multipleChoice?.length ? evaluateMultipleChoice(model, tokenizer, options.multipleChoice, { batchSize, ...(skipLayers ? { skipLayers } : {}) }) : null,
  });
  const full = measure();
  progress('full model');
  const split: TokenizedSplit = { tokens, offsets: Float64Array.from([0, tokens.length]) };
  const sequences = new SequenceSet(split, { mode: 'packed', seqLen: window, bos: null, eos, pad: eos });
  const depth = depthDiagnostics(model, sequentialBatches(sequences, batchSize));
  progress('depth diagnostics');
  const removal: LayerRemoval[] = [];
  if (options.layerRemoval ?? true) {
    for (let layer = 0; layer < model.config.num_hidden_layers; layer++) {
      const without = measure([layer]);
      removal.push({
        layer,
        perplexity: without.perplexity.perplexity,
        perplexityIncrease: without.perplexity.perplexity - full.perplexity.perplexity,
        clozeAccuracy: without.cloze?.accuracy ?? null,
        clozeAccuracyDrop: full.cloze && without.cloze ? full.cloze.accuracy - without.cloze.accuracy : null,
        multipleChoiceAccuracy: without.multipleChoice?.accuracy ?? null,
        multipleChoiceAccuracyDrop: full.multipleChoice && without.multipleChoice ? full.multipleChoice.accuracy - without.multipleChoice.accuracy : null,
      });
      progress(`without layer ${layer}`);
    }
  }
  return {
    scheme: model.scheme.name,
    layers: model.config.num_hidden_layers,
    perplexity: { loss: full.perplexity.loss, perplexity: full.perplexity.perplexity, tokens: full.perplexity.tokens },
    cloze: full.cloze,
    multipleChoice: full.multipleChoice,
    depth,
    removal,
  };
}
