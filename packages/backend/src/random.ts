import { tensor, type DataType, type Tensor } from '@tensorflow/tfjs';
import type { Rng } from '@deepen/core';

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A float32 tensor of normal deviates drawn from `rng` (reproducible on every engine). */
export function randomNormal(rng: Rng, shape: number[], std = 1, mean = 0): Tensor {
  return tensor(rng.fillNormal(new Float32Array(sizeOf(shape)), mean, std), shape, 'float32' as DataType);
}

/** A float32 tensor uniform in [low, high) drawn from `rng`. */
export function randomUniform(rng: Rng, shape: number[], low = 0, high = 1): Tensor {
  return tensor(rng.fillUniform(new Float32Array(sizeOf(shape)), low, high), shape, 'float32' as DataType);
}
