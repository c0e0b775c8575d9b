/**
 * How fast a model decodes one sequence with its KV cache: the measurement behind this
 * package's benchmark, exported so other comparisons (a llama.cpp case given a GGUF of the
 * same shape, say) time deepen the same way.
 */
import type { BenchCase } from '@deepen/tooling/bench';
import { generate, type LlamaModel } from '../src/index.js';

export interface DecodeOptions {
  /** Decode steps to time, one new token each. Default 64. */
  newTokens?: number;
  /** The KV cache's storage: 'auto' (arrays on the native engine) or 'tensors' (tfjs ops). Default 'auto'. */
  cacheStorage?: 'auto' | 'tensors';
}

export interface DecodeSpeed {
  /** The prompt's forward (it also yields the first new token, which is not counted below). */
  prefillMs: number;
  /** The `newTokens` decode steps after it, sampling and reading the logits included. */
  decodeMs: number;
  newTokens: number;
  /** newTokens / decodeMs, per second. */
  tokensPerSecond: number;
}

/**
 * Greedy generate() after `prompt` (batch 1, KV cache), timing the prefill apart from the
 * decode steps as llama.cpp's llama-bench separates pp from tg. The token that follows the
 * prompt comes out of the prefill; each of the next `newTokens` is one timed decode step.
 * EOS never stops it early.
 */
export function measureDecode(model: LlamaModel, prompt: number[], options: DecodeOptions = {}): DecodeSpeed {
  const newTokens = options.newTokens ?? 64;
  if (!Number.isInteger(newTokens) || newTokens < 1) throw new Error(`measureDecode: newTokens must be a positive integer, got ${newTokens}`);
  const started = performance.now();
  let first = 0;
  let last = 0;
  generate(model, prompt, {
    maxNewTokens: newTokens + 1,
    eosTokenId: null,
    cacheStorage: options.cacheStorage ?? 'auto',
    onToken: () => {
      last = performance.now();
      if (first === 0) first = last;
    },
  });
  const decodeMs = last - first;
  return { prefillMs: first - started, decodeMs, newTokens, tokensPerSecond: (newTokens * 1000) / decodeMs };
}

/** Decode tokens/s of `model` continuing `prompt` (see measureDecode). */
export function decodeTokensPerSecond(model: LlamaModel, prompt: number[], options: DecodeOptions = {}): number {
  return measureDecode(model, prompt, options).tokensPerSecond;
}

/** The median of some numbers (the upper one of an even count, as the bench harness takes it). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

/**
 * A bench case (tooling/bench.js) for deepen's decode: `runs` timed generations after one
 * warm-up, its time the median decode time of `newTokens` tokens, so the harness's throughput
 * column reads decode tokens/s and its ratio compares decode speed alone (no prefill).
 */
export function decodeCase(name: string, model: () => LlamaModel, prompt: number[], runs: number, options: DecodeOptions = {}): BenchCase {
  const newTokens = options.newTokens ?? 64;
  return {
    name,
    work: newTokens,
    external: async () => {
      // OpenBLAS's workers spin for ~75 ms after a threaded product (the previous case's
      // prefill, say) and would take a core from this case's first runs: let them sleep.
      await new Promise((resolve) => setTimeout(resolve, 250));
      measureDecode(model(), prompt, options);
      const times = Array.from({ length: runs }, () => measureDecode(model(), prompt, options).decodeMs);
      return { medianMs: median(times), runs };
    },
  };
}

/**
 * A bench case timed by another program that reports decode tokens/s per run: how a
 * llama.cpp comparison joins (`llama-bench -m model.gguf -p 0 -n 64 -t 2` reports tg64 in
 * tokens/s), with `measure` running it on a GGUF of the same shape.
 */
export function externalDecodeCase(name: string, newTokens: number, measure: () => Promise<number[]>): BenchCase {
  return {
    name,
    work: newTokens,
    external: async () => {
      const rates = await measure();
      if (rates.length === 0 || !rates.every((r) => r > 0)) throw new Error(`${name}: expected positive tokens/s per run, got [${rates.join(', ')}]`);
      return { medianMs: median(rates.map((r) => (newTokens * 1000) / r)), runs: rates.length };
    },
  };
}
