import { getLlama, type Llama, type LlamaContext, type LlamaModel as LlamaCppModel } from 'node-llama-cpp';

/**
 * llama.cpp itself, through node-llama-cpp's prebuilt CPU build: what the GGUF tests check
 * deepen's files against. The context runs with an F32 KV cache and flash attention off,
 * since llama.cpp's defaults (F16 cache, CPU flash attention) add rounding of their own.
 */

let llama: Promise<Llama> | null = null;

export function llamaCpp(): Promise<Llama> {
  llama ??= getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false, skipDownload: true, logLevel: 'error' as never, maxThreads: 2 });
  return llama;
}

export interface LlamaCppRun {
  model: LlamaCppModel;
  context: LlamaContext;
  dispose(): Promise<void>;
}

/** `defaults`: llama.cpp's own context settings (F16 KV cache, flash attention where it chooses), to show what they cost. */
export async function openInLlamaCpp(path: string, contextSize: number, options: { defaults?: boolean } = {}): Promise<LlamaCppRun> {
  const model = await (await llamaCpp()).loadModel({ modelPath: path, gpuLayers: 0 });
  const exact = options.defaults ? {} : { flashAttention: false, experimentalKvCacheKeyType: 'F32' as const, experimentalKvCacheValueType: 'F32' as const };
  const context = await model.createContext({ contextSize, batchSize: contextSize, threads: 2, ...exact });
  return {
    model,
    context,
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}

/**
 * llama.cpp's next-token distribution after every position of `tokens`: for position i, the
 * probabilities of token i + 1 (softmax of the raw logits: temperature 1, no other sampling
 * option). Returns, per position, the log-probability of the actual next token and the top 5 ids.
 */
export async function llamaCppScores(run: LlamaCppRun, tokens: number[]): Promise<{ logprobs: number[]; top5: number[][] }> {
  const sequence = run.context.getSequence();
  try {
    const input = tokens.map((t, i) => (i < tokens.length - 1 ? ([t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }] as const) : t));
    const out = await sequence.controlledEvaluate(input as never);
    const logprobs: number[] = [];
    const top5: number[][] = [];
    for (let i = 0; i < tokens.length - 1; i++) {
      const probabilities = out[i]?.next.probabilities;
      if (!probabilities) throw new Error(`llama.cpp gave no probabilities at position ${i}`);
      logprobs.push(Math.log(probabilities.get(tokens[i + 1] as never) ?? 0));
      top5.push([...probabilities.keys()].slice(0, 5) as number[]);
    }
    return { logprobs, top5 };
  } finally {
    sequence.dispose();
  }
}

/** llama.cpp's greedy continuation of `prompt` (ids), `count` tokens. */
export async function llamaCppGreedy(run: LlamaCppRun, prompt: number[], count: number): Promise<number[]> {
  const sequence = run.context.getSequence();
  try {
    const out: number[] = [];
    for await (const token of sequence.evaluate(prompt as never, { temperature: 0 })) {
      out.push(token as number);
      if (out.length >= count) break;
    }
    return out;
  } finally {
    sequence.dispose();
  }
}
