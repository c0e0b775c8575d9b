import type { ChatMessage } from '@deepen/data';
import type { ModelCardOptions, ResolvedToken } from '@deepen/hub';
import type { CheckpointMetrics, Hyperparameters } from '../store/types.js';

/** What a training worker is told to do (written to <job>/spec.json before it starts). */
export interface TrainingSpec {
  jobId: string;
  /** The base model's checkpoint folder. */
  baseModelDir: string;
  trainingFile: string;
  validationFile: string | null;
  hyperparameters: Hyperparameters;
  seed: number;
  /** Trainer output: checkpoints go to <runDir>/checkpoints/step-N. */
  runDir: string;
  /** The job's event journal (see journal.ts), appended to by every run of the worker. */
  journal: string;
  /** Where the finished model is written. */
  modelDir: string;
  /** TensorFlow.js engine request ('auto', 'wasm', ...). */
  engine: string;
}

export interface CheckpointReport {
  step: number;
  dir: string;
  metrics: CheckpointMetrics;
}

/**
 * What a training worker reports that becomes one of the job's events (and, for a checkpoint,
 * one of its checkpoints). The worker appends each to the job's journal before sending it.
 * `key` names what it reports (`step-12`, `validation-12`, `checkpoint-12`, `log-<run>-<n>`):
 * a job keeps one event per key, so a message that is both received and replayed from the
 * journal, or a step trained again after a crash, counts once. `time` is when it happened
 * (seconds since the epoch).
 */
export type JournaledMessage = { key: string; time: number } & (
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string; data?: Record<string, unknown> }
  | { type: 'step'; step: number; totalSteps: number; epoch: number; loss: number; lr: number; tokens: number; tokensPerSecond: number }
  | { type: 'validation'; step: number; epoch: number; loss: number; accuracy: number; tokens: number }
  | { type: 'checkpoint'; checkpoint: CheckpointReport }
);

export const JOURNALED_TYPES: ReadonlyArray<JournaledMessage['type']> = ['log', 'step', 'validation', 'checkpoint'];

/** Messages from a training worker to the service. */
export type TrainingMessage =
  | JournaledMessage
  /** Checkpoints found on disk when a job resumes (some may predate a crash). */
  | { type: 'checkpoints'; checkpoints: CheckpointReport[] }
  | { type: 'succeeded'; trainedTokens: number; modelDir: string; step: number }
  | { type: 'stopped'; step: number; checkpoint: CheckpointReport | null }
  /** `message` is shown to the tenant; `detail`, for an unexpected error, goes to the service's log only (it may name server paths). */
  | { type: 'failed'; code: string; message: string; detail?: string };

/** Messages from the service to a training worker. */
export type TrainingCommand = { type: 'stop' };

export interface CompletionJob {
  id: number;
  modelDir: string;
  input: { kind: 'text'; prompt: string } | { kind: 'chat'; messages: ChatMessage[] };
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
}

export type CompletionOutcome =
  | { id: number; ok: true; text: string; promptTokens: number; completionTokens: number; finishReason: 'stop' | 'length' }
  | { id: number; ok: false; status: number; message: string; param: string | null; code: string };

/** What a publishing process is told to do (written to <job>/publish.json; no token in it). */
export interface PublishSpec {
  jobId: string;
  /** The fine-tuned model's folder. */
  modelDir: string;
  repo: string;
  private: boolean;
  revision: string;
  hubUrl: string;
  commitMessage: string;
  card: ModelCardOptions;
}

/** From the service to a publishing process: its tenant's token, over IPC only (never argv, env or disk). */
export type PublishCommand = { type: 'token'; token: ResolvedToken };

/** Messages from a publishing process to the service. */
export type PublishMessage =
  /** Listening for the token. */
  | { type: 'ready' }
  /** A file's upload passed another quarter. */
  | { type: 'progress'; path: string; size: number; fraction: number }
  | { type: 'retry'; request: string; reason: string; attempt: number; delayMs: number }
  | { type: 'published'; url: string; commit: string; created: boolean; files: Array<{ path: string; size: number }> }
  /** As for training: `detail` is for the service's log only. */
  | { type: 'failed'; code: string; status: number | null; message: string; detail?: string };
