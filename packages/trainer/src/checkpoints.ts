import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LoaderState } from '@deepen/data';
import { loadCheckpoint, parseSafetensors, tensorToFloat32, type LlamaModel } from '@deepen/models';
import type { EvalEvent, StepEvent } from './events.js';

export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const CHECKPOINTS_DIR = 'checkpoints';

/** What a training checkpoint holds besides the model. */
export interface TrainerState {
  format: 1;
  step: number;
  loader: LoaderState;
  optimizer: { kind: 'adam' | 'adamw'; step: number };
  /** The options the run was started with (the CLI's flags), for resuming and for reports. */
  run: Record<string, unknown>;
  history: { steps: StepEvent[]; evals: EvalEvent[] };
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(7, '0')}`;
}

/** Checkpoint folders of a run, oldest first. */
export function listCheckpoints(runDir: string): string[] {
  const dir = join(runDir, CHECKPOINTS_DIR);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => /^step-\d+$/.test(n) && existsSync(join(dir, n, TRAINER_STATE_FILE)))
    .sort()
    .map((n) => join(dir, n));
}

/** Deletes all but the newest `keep` checkpoints of a run. */
export function pruneCheckpoints(runDir: string, keep: number): void {
  const all = listCheckpoints(runDir);
  for (const dir of all.slice(0, Math.max(0, all.length - keep))) rmSync(dir, { recursive: true, force: true });
}

/** A run folder (its newest checkpoint) or a checkpoint folder itself. */
export function resolveCheckpoint(path: string): string {
  if (existsSync(join(path, TRAINER_STATE_FILE))) return path;
  const latest = listCheckpoints(path).at(-1);
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
 * A checkpoint's trainer_state.json alone: no tensors, so it may be read before an engine is
 * chosen (to learn a run's settings, for instance).
 */
export function readTrainerState(path: string): { dir: string; state: TrainerState } {
  const dir = resolveCheckpoint(path);
  const statePath = join(dir, TRAINER_STATE_FILE);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
  } catch (error) {
    throw new Error(`${statePath}: not valid JSON (${(error as Error).message})`);
  }
  if (state.format !== 1 || !Number.isInteger(state.step)) throw new Error(`${statePath}: not a deepen trainer state (format ${String(state.format)})`);
  return { dir, state };
}

/**
 * Reads everything a resumed run needs from a checkpoint folder. The model's weights become
 * tensors of the current engine, so start the engine (initBackend) first.
 */
export function loadTrainingState(path: string): LoadedTrainingState {
  const { dir, state } = readTrainerState(path);
  const optimizerPath = join(dir, OPTIMIZER_FILE);
  if (!existsSync(optimizerPath)) throw new Error(`${optimizerPath}: optimizer state missing`);
  const file = parseSafetensors(readFileSync(optimizerPath), optimizerPath);
  const optimizerTensors = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const [name, t] of file.tensors) optimizerTensors.set(name, { shape: t.shape, values: tensorToFloat32(t, `${optimizerPath}: tensor ${name}`) });
  return { dir, model: loadCheckpoint(dir), state, optimizerTensors };
}
