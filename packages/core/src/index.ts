// @deepen/core: what every deepen package shares that needs no tensors. It imports no other
// deepen package and no TensorFlow.js, so the hub, the apps and scripts can use it alone.
export {
  writeFileDurable,
  writeFileDurableStream,
  writeJsonDurable,
  writeFileSynced,
  writeFileChunks,
  writeDirDurable,
  removeDirDurable,
  currentDir,
  repairDir,
  fsyncPath,
  fsyncTree,
  isTemporaryName,
} from './durable.js';
export type { FileData, WriteDirOptions } from './durable.js';
export { cacheDir } from './cache-dir.js';
export type { Env } from './cache-dir.js';
export { parseFlags, helpText, UsageError } from './flags.js';
export type { FlagSpec, FlagValues } from './flags.js';
export {
  float32ToBf16Bits,
  bf16BitsToFloat32,
  float32ToF16Bits,
  f16BitsToFloat32,
  float32ToBf16,
  bf16ToFloat32,
  float32ToF16,
  f16ToFloat32,
} from './float-bits.js';
export { Rng } from './random.js';
export type { RngState } from './random.js';
export {
  parseSafetensors,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  summarizeSafetensors,
  serializeSafetensors,
  tensorToFloat32,
  encodeFloat32,
  SafetensorsError,
  DTYPE_BYTES,
} from './safetensors.js';
export type {
  SafetensorsDtype,
  SafetensorsEntry,
  SafetensorsFile,
  SafetensorsHeader,
  SafetensorsSummary,
  SafetensorsTensor,
  StorageDtype,
  TensorToWrite,
} from './safetensors.js';
export {
  CONFIG_FILE,
  GENERATION_CONFIG_FILE,
  WEIGHTS_FILE,
  WEIGHTS_INDEX_FILE,
  TOKENIZER_FILE,
  TOKENIZER_CONFIG_FILE,
  SPECIAL_TOKENS_MAP_FILE,
  CARD_FILE,
  TRAINER_STATE_FILE,
  OPTIMIZER_FILE,
  PRUNE_REPORT_FILE,
  METRICS_FILE,
  RUN_FILE,
  ANALYSIS_REPORT_FILE,
  CHECKPOINTS_DIR,
  checkpointName,
  shardFileName,
  readJsonFile,
  isRunDir,
  listCheckpoints,
  locateCheckpoint,
  runDirOf,
  weightFiles,
} from './layout.js';
export type { CheckpointLocation, WeightFiles } from './layout.js';
export {
  TRAINING_EVENTS,
  MetricsLog,
  JsonLinesWriter,
  readMetrics,
  writeRunRecord,
  readRunRecord,
  trainerStateJson,
  readTrainerState,
  writeAnalysisReportJson,
  readAnalysisReport,
  analysisEntryFor,
  pruneReportJson,
  readPruneReport,
  readTrainingHistory,
} from './records.js';
export type {
  StepRecord,
  EvalRecord,
  LayerDiagnosticsRecord,
  DiagnosticsRecord,
  CheckpointRecord,
  DoneRecord,
  ErrorRecord,
  TrainingEventRecords,
  TrainingEventName,
  MetricsLine,
  RunRecord,
  TrainerStateRecord,
  LayerDepthStats,
  DepthDiagnostics,
  MultipleChoiceResult,
  ClozeResult,
  LayerRemoval,
  AnalysisResult,
  AnalysisEntry,
  PruneStageSummary,
  PruneReport,
  TrainingHistory,
} from './records.js';
