/**
 * Batch-1 KV-cached decode on the native engine: tokens/s of greedy generation at the 9m
 * (4 layers, hidden 128) and 130m (12 layers, hidden 768) preset shapes with random F32
 * weights and vocab 2048, a 64-token prompt then 64 decode steps, on 2 threads
 * (DEEPEN_THREADS overrides). The baseline, measured in this run, is the same generate()
 * through tfjs ops with a tensor KV cache (cacheStorage 'tensors'); the candidate decodes on
 * arrays through the engine's decode kernels with the cache written in place.
 *
 * A comparison with llama.cpp joins as one more candidate per shape: externalDecodeCase
 * (./decode.ts) around llama-bench on a GGUF of that shape (see `candidates` below).
 */
import { formatBackendReport, initBackend } from '@deepen/backend';
import { compare, type BenchCase } from '@deepen/tooling/bench';
import { LlamaModel, presetConfig } from '../src/index.js';
import { decodeCase } from './decode.js';

const quick = process.env.DEEPEN_BENCH_QUICK === '1';
const runs = quick ? 2 : 7;
const vocab = 2048;
const promptLength = 64;
const newTokens = 64;
// The comparison this benchmark exists for (llama.cpp) is quoted at two threads.
process.env.DEEPEN_THREADS ??= '2';

let report;
try {
  report = await initBackend({ engine: 'native' });
} catch (error) {
  console.log(`models bench: the native engine is not available here, nothing to measure (${(error as Error).message})`);
  process.exit(0);
}
console.log(formatBackendReport(report));

const prompt = Array.from({ length: promptLength }, (_, i) => (i * 131 + 7) % vocab);

for (const preset of ['9m', '130m']) {
  const model = LlamaModel.create(presetConfig(preset, { vocab_size: vocab }), { seed: 0 });
  const { total } = model.parameterCount();
  const candidates: BenchCase[] = [
    decodeCase('deepen, native decode path (array KV cache)', () => model, prompt, runs, { newTokens, cacheStorage: 'auto' }),
    // llama.cpp on the same shape goes here: externalDecodeCase('llama.cpp, F32 GGUF', newTokens, ...).
  ];
  await compare(
    `decode, ${preset} shape (${(total / 1e6).toFixed(1)}M parameters, F32), vocab ${vocab}, batch 1, ${promptLength}-token prompt then ${newTokens} tokens greedy, ${report.threads} threads`,
    {
      unit: 'tokens',
      baseline: decodeCase('deepen, tfjs ops (tensor KV cache)', () => model, prompt, runs, { newTokens, cacheStorage: 'tensors' }),
      candidates,
    },
  );
  model.dispose();
}
