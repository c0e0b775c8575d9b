/**
 * Training and forward throughput of the 9m preset (4 layers, hidden 128, 4 heads, Adam) at
 * vocab 32000 and 4096, batch 8 x 256 tokens, on every engine that starts here. The baseline
 * of each table is the same model in PyTorch eager on the same machine and thread count,
 * measured in this run, when python3 with torch is installed (`bash tooling/pytorch/install.sh`);
 * otherwise the pure-JS cpu engine.
 *
 * The wasm and cpu engines are too slow for the full batch in a benchmark run: they train on
 * one sequence of 256 tokens per step (tokens/s barely depends on the batch there) and their
 * rows say so.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { ENGINE_ORDER, initBackend, tidyValues, type BackendReport, type EngineName } from '@deepen/backend';
import { LlamaModel, presetConfig } from '@deepen/models';
import { compare, type BenchCase } from '@deepen/tooling/bench';
import { Adam } from '../src/index.js';

const quick = process.env.DEEPEN_BENCH_QUICK === '1';
const seqLen = quick ? 64 : 256;
const fullBatch = quick ? 2 : 8;
const here = dirname(fileURLToPath(import.meta.url));
const pytorchScript = join(here, '..', '..', '..', 'tooling', 'pytorch', 'llama_bench.py');

const reports = new Map<EngineName, BackendReport>();
for (const engine of ENGINE_ORDER) {
  try {
    reports.set(engine, await initBackend({ engine }));
  } catch (error) {
    console.log(`${engine}: not available (${(error as Error).message.split(': ').slice(2).join(': ').replace(/ \(.*$/s, '')})`);
  }
}
const threads = reports.get('native')?.threads ?? 1;

/** A python3 that can import torch, if any. */
function findTorch(): string | null {
  for (const python of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (probe.status === 0) return python;
  }
  return null;
}
const python = findTorch();
if (!python) console.log('pytorch: not installed (bash tooling/pytorch/install.sh installs Debian\'s python3-torch for this comparison)');

interface TorchResult {
  kind: 'train' | 'forward';
  vocab: number;
  median_ms: number;
  runs: number;
  torch: string;
}
const torchResults = new Map<string, TorchResult>();

/** Runs the PyTorch twin of this benchmark for one vocabulary (both kinds) in a child process. */
function torchMeasure(vocab: number, kind: 'train' | 'forward'): () => Promise<{ medianMs: number; runs: number }> {
  return async () => {
    if (!torchResults.has(`${vocab}/${kind}`)) {
      const args = [pytorchScript, '--vocab', String(vocab), '--batch', String(fullBatch), '--seq-len', String(seqLen), '--threads', String(threads)];
      args.push('--warmup', quick ? '1' : '2', '--runs', quick ? '1' : '5');
      const run = spawnSync(python!, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (run.status !== 0) throw new Error(`PyTorch baseline failed: ${run.stderr}`);
      for (const line of run.stdout.trim().split('\n')) {
        const result = JSON.parse(line) as TorchResult;
        torchResults.set(`${result.vocab}/${result.kind}`, result);
      }
    }
    const result = torchResults.get(`${vocab}/${kind}`)!;
    return { medianMs: result.median_ms, runs: result.runs };
  };
}

/** The model of the case being measured; each case's setup releases the previous one's. */
let model: LlamaModel | null = null;
let optimizer: Adam | null = null;
let ids: tf.Tensor2D | null = null;

function engineCase(engine: EngineName, vocab: number, kind: 'train' | 'forward'): BenchCase {
  // Only the engines fast enough for it get the full batch.
  const slow = engine === 'wasm' || engine === 'cpu';
  const batch = slow ? 1 : fullBatch;
  return {
    name: `deepen ${engine}${slow ? ` (batch 1 x ${seqLen})` : ''}`,
    work: batch * seqLen,
    ...(slow ? { warmup: 1, minRuns: 1 } : {}),
    setup: async () => {
      ids?.dispose();
      model?.dispose();
      optimizer?.dispose();
      await initBackend({ engine });
      model = LlamaModel.create(presetConfig('9m', { vocab_size: vocab }), { seed: 0 });
      optimizer = new Adam(model.params, { kind: 'adam' });
      ids = tf.tensor2d(Array.from({ length: batch }, (_, b) => Array.from({ length: seqLen }, (_, i) => (i * 31 + b * 7) % vocab)), undefined, 'int32');
    },
    fn: () => {
      if (kind === 'forward') {
        tidyValues(() => model!.logits(ids!));
        return;
      }
      const { value, grads } = tf.variableGrads(() => model!.loss(ids!), model!.trainableVariables());
      const byName = new Map([...model!.params].map(([name, v]) => [name, grads[v.name]!]));
      optimizer!.apply(byName, 1e-3);
      value.dataSync();
      tf.dispose([value, ...Object.values(grads)]);
    },
  };
}

const engines = [...reports.keys()];
for (const vocab of [32000, 4096]) {
  for (const kind of ['train', 'forward'] as const) {
    const torch: BenchCase[] = python ? [{ name: `pytorch eager (${threads} thread${threads === 1 ? '' : 's'})`, work: fullBatch * seqLen, external: torchMeasure(vocab, kind) }] : [];
    const cases = [...torch, ...engines.map((engine) => engineCase(engine, vocab, kind))];
    // Without PyTorch, the cpu engine (last in the engine order) is the baseline.
    const [baseline, ...candidates] = python ? cases : [cases.at(-1)!, ...cases.slice(0, -1)];
    await compare(`9m preset, vocab ${vocab}, ${kind === 'train' ? 'training step (forward + backward + Adam)' : 'forward'}, ${fullBatch} x ${seqLen} tokens`, {
      unit: 'tokens',
      warmup: 1,
      minRuns: quick ? 1 : 3,
      minTimeMs: 0,
      baseline: baseline!,
      candidates,
    });
  }
}
