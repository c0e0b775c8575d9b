/**
 * Training and forward throughput of the 9m preset (4 layers, hidden 128) at vocab 32000 and
 * 4096, on every engine that starts here. The pure-JS cpu engine, measured in the same run,
 * is the baseline of each table.
 */
import * as tf from '@tensorflow/tfjs';
import { ENGINE_ORDER, initBackend, type EngineName } from '@deepen/backend';
import { LlamaModel, presetConfig } from '@deepen/models';
import { compare, type BenchCase } from '@deepen/tooling/bench';
import { Adam } from '../src/index.js';

const quick = process.env.DEEPEN_BENCH_QUICK === '1';
const seqLen = quick ? 64 : 256;
const batch = 1;

const available: EngineName[] = [];
for (const engine of ENGINE_ORDER) {
  try {
    await initBackend({ engine });
    available.push(engine);
  } catch (error) {
    console.log(`${engine}: not available (${(error as Error).message.split(': ').slice(2).join(': ').replace(/ \(.*$/s, '')})`);
  }
}
// Baseline first: the cpu engine, then the others in preference order.
const engines = ['cpu', ...available.filter((e) => e !== 'cpu')] as EngineName[];

function cases(vocab: number, kind: 'train' | 'forward'): BenchCase[] {
  return engines.map((engine) => {
    let model: LlamaModel | null = null;
    let optimizer: Adam | null = null;
    let ids: tf.Tensor2D | null = null;
    return {
      name: engine,
      work: batch * seqLen,
      setup: async () => {
        await initBackend({ engine });
        model = LlamaModel.create(presetConfig('9m', { vocab_size: vocab }), { seed: 0 });
        optimizer = new Adam(model.params, { kind: 'adam' });
        ids = tf.tensor2d(Array.from({ length: batch }, (_, b) => Array.from({ length: seqLen }, (_, i) => (i * 31 + b * 7) % vocab)), undefined, 'int32');
      },
      fn: () => {
        if (kind === 'forward') {
          tf.tidy(() => model!.logits(ids!).dataSync());
          return;
        }
        const { grads } = tf.variableGrads(() => model!.loss(ids!), model!.trainableVariables());
        const byName = new Map([...model!.params].map(([name, v]) => [name, grads[v.name]!]));
        optimizer!.apply(byName, 1e-3);
        tf.dispose(Object.values(grads));
      },
    };
  });
}

for (const vocab of [32000, 4096]) {
  for (const kind of ['train', 'forward'] as const) {
    const [baseline, ...candidates] = cases(vocab, kind);
    await compare(`9m preset, vocab ${vocab}, ${kind === 'train' ? 'training step (forward + backward + Adam)' : 'forward'}, batch ${batch} x ${seqLen} tokens`, {
      unit: 'tokens',
      warmup: 1,
      minRuns: quick ? 1 : 2,
      minTimeMs: 0,
      baseline: baseline!,
      candidates,
    });
  }
}
