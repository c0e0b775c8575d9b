export { Trainer, TrainingDivergedError } from './trainer.js';
export type { TrainOptions, TrainInputs } from './trainer.js';
export { evaluateLoss, countedTokens, batchTensors } from './evaluate.js';
export { Adam } from './optimizer.js';
export type { AdamOptions, UpdateNorms } from './optimizer.js';
export { lrAt, validateSchedule } from './schedule.js';
export type { ScheduleKind, ScheduleOptions } from './schedule.js';
export { Emitter } from './events.js';
export type { TrainerEvents, StepEvent, EvalEvent, DiagnosticsEvent, LayerDiagnostics, CheckpointEvent, DoneEvent, ErrorEvent } from './events.js';
export {
  loadTrainingState,
  readTrainerState,
  listCheckpoints,
  pruneCheckpoints,
  resolveCheckpoint,
  checkpointName,
  TRAINER_STATE_FILE,
  OPTIMIZER_FILE,
  CHECKPOINTS_DIR,
} from './checkpoints.js';
export type { TrainerState, LoadedTrainingState } from './checkpoints.js';
