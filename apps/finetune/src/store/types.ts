import type { TrainingFileFormat } from '../training-file.js';

export type JobStatus = 'validating_files' | 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const JOB_STATUSES: readonly JobStatus[] = ['validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];
/** Statuses from which a job still changes. */
export const ACTIVE_STATUSES: readonly JobStatus[] = ['validating_files', 'queued', 'running'];

export interface FileRecord {
  id: string;
  tenant: string;
  filename: string;
  purpose: 'fine-tune';
  bytes: number;
  /** Content address of the stored bytes. */
  sha256: string;
  format: TrainingFileFormat;
  examples: number;
  createdAt: number;
}

/** Hyperparameters as a job runs them ("auto" already resolved). */
export interface Hyperparameters {
  n_epochs: number;
  batch_size: number;
  learning_rate: number;
  warmup: number;
  max_seq_len: number;
}

export interface JobError {
  code: string;
  message: string;
  param: string | null;
}

/** Where a publish target stands: waiting for training, uploading, done, or given up. */
export type PublishStatus = 'pending' | 'publishing' | 'published' | 'failed';

/** A job's publish target on the Hugging Face Hub and what became of it. Never holds a token. */
export interface PublishRecord {
  /** `owner/name`. */
  repo: string;
  /** Visibility of a repository the upload creates (an existing one keeps its own). */
  private: boolean;
  /** Branch committed to. */
  revision: string;
  status: PublishStatus;
  /** The repository (or branch) page once published. */
  url: string | null;
  commit: string | null;
  error: { code: string; message: string } | null;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface JobRecord {
  id: string;
  tenant: string;
  /** The base model's id. */
  model: string;
  trainingFile: string;
  validationFile: string | null;
  /** The files' contents at creation: a job trains on exactly these bytes. */
  trainingSha256: string;
  validationSha256: string | null;
  hyperparameters: Hyperparameters;
  totalSteps: number;
  suffix: string | null;
  seed: number;
  status: JobStatus;
  error: JobError | null;
  /** The id the fine-tuned model gets (shown once the job succeeds). */
  fineTunedModel: string;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  trainedTokens: number | null;
  /** Where the fine-tuned model is published once training succeeds, if anywhere. */
  publish: PublishRecord | null;
  /** The process training or publishing it now, if any (to stop a stale one after a crash). */
  workerPid: number | null;
}

export type EventLevel = 'info' | 'warn' | 'error';

export interface EventRecord {
  /** Store-wide order; cursors and Server-Sent Events ids derive from it. */
  seq: number;
  id: string;
  jobId: string;
  createdAt: number;
  level: EventLevel;
  type: 'message' | 'metrics';
  message: string;
  data: Record<string, unknown> | null;
}

/** An event a training worker journaled, under its key, with the checkpoint it reports if it reports one. */
export interface JournaledEntry {
  key: string;
  event: Omit<EventRecord, 'seq'>;
  checkpoint: CheckpointRecord | null;
}

export interface CheckpointMetrics {
  step: number;
  epoch: number;
  train_loss: number;
  valid_loss: number | null;
  valid_mean_token_accuracy: number | null;
}

export interface CheckpointRecord {
  id: string;
  jobId: string;
  step: number;
  createdAt: number;
  /** The model id that generates from this checkpoint. */
  modelId: string;
  dir: string;
  metrics: CheckpointMetrics;
}

export interface ModelRecord {
  id: string;
  tenant: string;
  jobId: string;
  baseModel: string;
  dir: string;
  createdAt: number;
}

export interface Page<T> {
  data: T[];
  hasMore: boolean;
}

/** Newest first; `after` is the id of the last item of the previous page. */
export interface PageRequest {
  after?: string;
  limit: number;
}

/** A cursor (`after`) that names nothing this tenant can see. */
export class UnknownCursorError extends Error {
  constructor(readonly cursor: string) {
    super(`unknown cursor '${cursor}'`);
    this.name = 'UnknownCursorError';
  }
}

/**
 * Everything the service keeps. The embedded implementation is SQLite; the interface is async
 * so that a shared database can back several service instances. Every read that takes a
 * tenant returns only that tenant's records: another tenant's id reads as absent.
 */
export interface Store {
  insertFile(file: FileRecord): Promise<void>;
  getFile(tenant: string, id: string): Promise<FileRecord | null>;
  listFiles(tenant: string, page: PageRequest & { purpose?: string }): Promise<Page<FileRecord>>;
  deleteFile(tenant: string, id: string): Promise<boolean>;
  /** Whether any file record or any job that may still run refers to this content. */
  blobReferenced(sha256: string): Promise<boolean>;

  insertJob(job: JobRecord): Promise<void>;
  getJob(tenant: string, id: string): Promise<JobRecord | null>;
  /** Any tenant's job (for the scheduler). */
  findJob(id: string): Promise<JobRecord | null>;
  listJobs(tenant: string, page: PageRequest): Promise<Page<JobRecord>>;
  /** Jobs in these statuses, oldest first. */
  jobsWithStatus(statuses: readonly JobStatus[]): Promise<JobRecord[]>;
  /** Jobs that may still run and use this file. */
  activeJobsUsingFile(tenant: string, fileId: string): Promise<number>;
  /**
   * Changes a job only if its status is one of `from` (a compare-and-set, so two writers never
   * both win); returns the updated job, or null when the status had moved on.
   */
  updateJob(id: string, from: readonly JobStatus[], patch: Partial<Omit<JobRecord, 'id' | 'tenant'>>): Promise<JobRecord | null>;
  /** Succeeded jobs whose publish target is pending or was being uploaded, oldest first. */
  jobsAwaitingPublish(): Promise<JobRecord[]>;
  /** Moves the oldest queued job to running; null when none is queued. */
  claimQueuedJob(patch: Partial<Omit<JobRecord, 'id' | 'tenant' | 'status'>>): Promise<JobRecord | null>;

  addEvent(event: Omit<EventRecord, 'seq'>): Promise<EventRecord>;
  /**
   * Records what a training worker journaled, in one transaction: each event with its
   * journal key and, for a checkpoint, the checkpoint. An event whose key the job already has
   * is skipped with its checkpoint, so replaying a journal adds only what is missing. Returns
   * the events added.
   */
  addJournaled(entries: JournaledEntry[]): Promise<EventRecord[]>;
  listEvents(jobId: string, page: PageRequest): Promise<Page<EventRecord>>;
  /** Events after a position (oldest first), for streaming. */
  eventsSince(jobId: string, seq: number, limit: number): Promise<EventRecord[]>;
  /** The position of an event of this job, or null. */
  eventSeq(jobId: string, eventId: string): Promise<number | null>;

  /** Records a checkpoint; a second record for the same job and step replaces the first. */
  putCheckpoint(checkpoint: CheckpointRecord): Promise<void>;
  listCheckpoints(jobId: string, page: PageRequest): Promise<Page<CheckpointRecord>>;
  /** A checkpoint by the model id it generates as, within a tenant. */
  findCheckpointModel(tenant: string, modelId: string): Promise<CheckpointRecord | null>;

  insertModel(model: ModelRecord): Promise<void>;
  getModel(tenant: string, id: string): Promise<ModelRecord | null>;
  listModels(tenant: string): Promise<ModelRecord[]>;

  /** Whether the store answers (for readiness). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
