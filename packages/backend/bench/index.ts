/**
 * Embedding backward pass: UnsortedSegmentSum (the gradient of gather) as tfjs ships it on
 * the cpu engine, against deepen's scatter-add on cpu and wasm. The baseline is measured in
 * the same run; results are ratios against it.
 */
import * as tf from '@tensorflow/tfjs';
import { compare } from '@deepen/tooling/bench';
import { Rng } from '@deepen/core';
import { initBackend, originalKernel } from '../src/index.js';

const quick = process.env.DEEPEN_BENCH_QUICK === '1';
// The tfjs kernel costs O(vocab x tokens x hidden): keep the shape small enough for it to finish.
const vocab = quick ? 256 : 512;
const tokens = quick ? 256 : 512;
const hidden = 128;

const rng = Rng.fromSeed(0);
const gradValues = rng.fillNormal(new Float32Array(tokens * hidden));
const idValues = Int32Array.from({ length: tokens }, () => rng.int(vocab));

let x: tf.Tensor2D | undefined;
let ids: tf.Tensor1D | undefined;

/** Fresh inputs on the engine that is active now, so no case pays for moving data between engines. */
async function onEngine(engine: 'cpu' | 'wasm') {
  tf.dispose([x, ids]);
  await initBackend({ engine });
  x = tf.tensor2d(gradValues, [tokens, hidden]);
  ids = tf.tensor1d(idValues, 'int32');
}

await initBackend({ engine: 'cpu' });
const tfjsKernel = originalKernel('UnsortedSegmentSum', 'cpu');
if (!tfjsKernel) throw new Error('the original tfjs cpu UnsortedSegmentSum kernel was not recorded');

await compare(`embedding gradient (UnsortedSegmentSum), ${tokens} tokens x ${hidden} into vocab ${vocab}`, {
  unit: 'tokens',
  warmup: 1,
  minRuns: 3,
  baseline: {
    name: 'tfjs cpu kernel',
    work: tokens,
    setup: () => onEngine('cpu'),
    fn: () => {
      const backend = tf.backend();
      const out = tfjsKernel.kernelFunc({ inputs: { x: x!, segmentIds: ids! }, attrs: { numSegments: vocab }, backend }) as tf.TensorInfo;
      backend.disposeData(out.dataId);
    },
  },
  candidates: [
    {
      name: 'deepen scatter-add, cpu',
      work: tokens,
      setup: () => onEngine('cpu'),
      fn: () => tf.tidy(() => tf.unsortedSegmentSum(x!, ids!, vocab).dataSync()),
    },
    {
      name: 'deepen scatter-add, wasm',
      work: tokens,
      setup: () => onEngine('wasm'),
      fn: () => tf.tidy(() => tf.unsortedSegmentSum(x!, ids!, vocab).dataSync()),
    },
  ],
});
tf.dispose([x, ids]);
