/**
 * Batch-1 decode speed of deepen against llama.cpp on the same model: the paper's 9m and
 * 130m shapes with a 2,048-token vocabulary, random F32 weights, exported by deepen as an F32
 * GGUF and run by node-llama-cpp 3.21.1's prebuilt CPU build with an F32 KV cache and flash
 * attention off. Each run continues a 64-token prompt by 64 greedy tokens; the time counted is
 * from the first new token to the last (prefill excluded), the median over runs. llama.cpp at
 * 2 threads is the baseline of each table; it also runs at 1 thread, because on a two-core
 * machine its two compute threads share the cores with Node's own and it can decode faster
 * with one (compare deepen with the faster of the two).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '@deepen/backend';
import { Tokenizer, trainByteLevelBpe } from '@deepen/data';
import { generate, LlamaModel, presetConfig } from '@deepen/models';
import { compare } from '@deepen/tooling/bench';
import { getLlama } from 'node-llama-cpp';
import { exportGguf } from '../src/index.js';

const quick = process.env.DEEPEN_BENCH_QUICK === '1';
const PROMPT = 64;
const NEW = quick ? 16 : 64;
const RUNS = quick ? 2 : 5;
const VOCAB = 2048;

const report = await initBackend({ engine: 'native' });
console.log(`deepen engine: ${report.engine}, ${report.threads} threads`);
const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, progressLogs: false, skipDownload: true, logLevel: 'error' as never, maxThreads: 2 });
const dir = mkdtempSync(join(tmpdir(), 'deepen-gguf-bench-'));
// A byte-level tokenizer for the file's metadata (rows past its vocabulary become [PAD] tokens):
// the ids are what is timed, not the text.
const corpus = Array.from({ length: 400 }, (_, i) => `line ${i}: ${'abcdefghijklmnopqrstuvwxyz'.slice(i % 26)} ${i * 7919} the quick brown fox ${i % 13}`);
const tokenizer = Tokenizer.fromJSON(trainByteLevelBpe(corpus, { vocabSize: VOCAB }));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

for (const preset of ['9m', '130m']) {
  const config = presetConfig(preset, { vocab_size: VOCAB, max_position_embeddings: 512, deepen: { norm_scheme: 'pre' } });
  const model = LlamaModel.create(config, { seed: 1 });
  const path = join(dir, `${preset}.gguf`);
  await exportGguf(model, tokenizer, path, { dtype: 'f32' });
  const prompt = Array.from({ length: PROMPT }, (_, i) => 4 + ((i * 37) % (tokenizer.vocabSize - 4)));

  const deepenDecode = async () => {
    const times: number[] = [];
    for (let r = 0; r < RUNS + 1; r++) {
      let first = 0;
      let last = 0;
      let n = 0;
      generate(model, prompt, {
        maxNewTokens: NEW,
        eosTokenId: null,
        onToken: () => {
          last = performance.now();
          if (n++ === 0) first = last;
        },
      });
      if (r > 0) times.push(last - first); // the first run warms up
    }
    return { medianMs: median(times), runs: RUNS };
  };

  const cppModel = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  const contexts = new Map<number, Awaited<ReturnType<typeof cppModel.createContext>>>();
  for (const threads of [2, 1]) {
    contexts.set(threads, await cppModel.createContext({ contextSize: 512, batchSize: 512, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', threads }));
  }
  const llamaDecode = (threads: number) => async () => {
    const context = contexts.get(threads)!;
    const times: number[] = [];
    for (let r = 0; r < RUNS + 1; r++) {
      const sequence = context.getSequence();
      let first = 0;
      let last = 0;
      let n = 0;
      for await (const _token of sequence.evaluate(prompt as never, { temperature: 0 })) {
        last = performance.now();
        if (n++ === 0) first = last;
        if (n >= NEW) break;
      }
      sequence.dispose();
      if (r > 0) times.push(last - first);
    }
    return { medianMs: median(times), runs: RUNS };
  };

  // Every case counts NEW - 1 decode steps: from the first new token to the last.
  await compare(`decode, batch 1, ${preset} shape (vocab ${VOCAB}, F32 weights and KV cache), tokens after the first`, {
    baseline: { name: 'llama.cpp, 2 threads (node-llama-cpp 3.21.1)', external: llamaDecode(2), work: NEW - 1 },
    candidates: [
      { name: 'llama.cpp, 1 thread', external: llamaDecode(1), work: NEW - 1 },
      { name: `deepen generate (${report.engine}, ${report.threads} threads)`, external: deepenDecode, work: NEW - 1 },
    ],
    unit: 'tokens',
  });
  for (const context of contexts.values()) await context.dispose();
  await cppModel.dispose();
  model.dispose();
}
await llama.dispose();
rmSync(dir, { recursive: true, force: true });
