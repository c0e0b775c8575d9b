import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  currentDir,
  listCheckpoints,
  OPTIMIZER_FILE,
  parseSafetensors,
  readTrainerState,
  removeDirDurable,
  tensorToFloat32,
  TRAINER_STATE_FILE,
  CHECKPOINTS_DIR,
  type TrainerStateRecord,
} from '@deepen/core';
import type { LoaderState } from '@deepen/data';
import { loadCheckpoint, type LlamaModel } from '@deepen/models';

/** What a training checkpoint holds besides the model (trainer_state.json, see @deepen/core). */
export type TrainerState = TrainerStateRecord<LoaderState>;

/** Training checkpoint folders of a run (those a run can resume from), oldest first. */
export function listTrainingCheckpoints(runDir: string): string[] {
  return listCheckpoints(runDir, { training: true });
}

/**
 * Deletes all but the newest `keep` training checkpoints of a run. Each is renamed aside
 * before it is deleted, so a crash never leaves a half-deleted folder under a checkpoint name.
 */
export function pruneCheckpoints(runDir: string, keep: number): void {
  const all = listTrainingCheckpoints(runDir);
  for (const dir of all.slice(0, Math.max(0, all.length - keep))) removeDirDurable(dir);
}

/** A run folder (its newest training checkpoint) or a training checkpoint folder itself. */
export function resolveCheckpoint(path: string): string {
  const dir = currentDir(path);
  if (existsSync(join(dir, TRAINER_STATE_FILE))) return dir;
  const latest = listTrainingCheckpoints(path).at(-1);
  if (!latest) throw new Error(`${path}: no training checkpoint here (expected ${TRAINER_STATE_FILE}, or a run folder with ${CHECKPOINTS_DIR}/step-*)`);
  return latest;
}

export interface LoadedTrainingState {
  dir: string;
  model: LlamaModel;
  state: TrainerState;
  optimizerTensors: Map<string, { shape: number[]; values: Float32Array }>;
}

/**
 * A checkpoint's trainer_state.json alone (or that of a run's newest checkpoint): no tensors, so
 * it may be read before an engine is chosen (to learn a run's settings, for instance).
 */
export function readTrainingState(path: string): { dir: string; state: TrainerState } {
  const dir = resolveCheckpoint(path);
  return { dir, state: readTrainerState<LoaderState>(dir) };
}

/**
 * Reads everything a resumed run needs from a checkpoint folder. The model's weights become
 * tensors of the current engine, so start the engine (initBackend) first.
 */
export function loadTrainingState(path: string): LoadedTrainingState {
  const { dir, state } = readTrainingState(path);
  const optimizerPath = join(dir, OPTIMIZER_FILE);
  if (!existsSync(optimizerPath)) throw new Error(`${optimizerPath}: optimizer state missing`);
  const file = parseSafetensors(readFileSync(optimizerPath), optimizerPath);
  const optimizerTensors = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const [name, t] of file.tensors) optimizerTensors.set(name, { shape: t.shape, values: tensorToFloat32(t, `${optimizerPath}: tensor ${name}`) });
  return { dir, model: loadCheckpoint(dir), state, optimizerTensors };
}
