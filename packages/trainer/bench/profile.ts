/**
 * Where a training step's time goes: every kernel of the active engine timed over one step of
 * the 9m preset (batch 8 x 256, Adam), after a warm-up step.
 *
 *   pnpm --filter @deepen/trainer profile [--vocab 4096] [--backend wasm] [--batch 1]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { formatBackendReport, formatKernelProfile, initBackend, profileKernels } from '@deepen/backend';
import { LlamaModel, presetConfig } from '@deepen/models';
import { Adam } from '../src/index.js';

const { values } = parseArgs({
  // pnpm forwards a literal '--' when one is typed before the flags.
  args: process.argv.slice(2).filter((arg, i) => !(i === 0 && arg === '--')),
  options: {
    vocab: { type: 'string', default: '32000' },
    batch: { type: 'string', default: '8' },
    'seq-len': { type: 'string', default: '256' },
    preset: { type: 'string', default: '9m' },
    backend: { type: 'string' },
    top: { type: 'string', default: '20' },
  },
});
const vocab = Number(values.vocab);
const batch = Number(values.batch);
const seqLen = Number(values['seq-len']);
console.log(formatBackendReport(await initBackend(values.backend === undefined ? {} : { engine: values.backend, engineSource: '--backend' })));

const model = LlamaModel.create(presetConfig(values.preset!, { vocab_size: vocab, max_position_embeddings: Math.max(1024, seqLen) }), { seed: 0 });
const optimizer = new Adam(model.params, { kind: 'adam' });
const ids = tf.tensor2d(Array.from({ length: batch }, (_, b) => Array.from({ length: seqLen }, (_, i) => (i * 31 + b * 7) % vocab)), undefined, 'int32');
const step = () => {
  const { value, grads } = tf.variableGrads(() => model.loss(ids), model.trainableVariables());
  optimizer.apply(new Map([...model.params].map(([name, v]) => [name, grads[v.name]!])), 1e-3);
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
};
step();
const profile = await profileKernels(step);
const tokens = batch * seqLen;
console.log(`\n${values.preset} preset, vocab ${vocab}, ${batch} x ${seqLen} tokens: one training step in ${profile.totalMs.toFixed(0)} ms (${Math.round((tokens * 1000) / profile.totalMs).toLocaleString('en-US')} tokens/s)\n`);
console.log(formatKernelProfile(profile, Number(values.top)));
