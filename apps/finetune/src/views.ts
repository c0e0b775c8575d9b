import type { z } from 'zod';
import type { FileObject, FineTuningJob, JobCheckpoint, JobEvent, PublishResult } from './schemas.js';
import type { CheckpointRecord, EventRecord, FileRecord, JobRecord, Page, PublishRecord } from './store/types.js';

/** Records as the API shows them (OpenAI's field names and objects). */
export const fileView = (f: FileRecord): z.infer<typeof FileObject> => ({
  id: f.id,
  object: 'file',
  bytes: f.bytes,
  created_at: f.createdAt,
  filename: f.filename,
  purpose: f.purpose,
  status: 'processed',
  status_details: null,
  format: f.format,
  examples: f.examples,
});

export const jobView = (j: JobRecord): z.infer<typeof FineTuningJob> => ({
  id: j.id,
  object: 'fine_tuning.job',
  created_at: j.createdAt,
  started_at: j.startedAt,
  finished_at: j.finishedAt,
  model: j.model,
  fine_tuned_model: j.status === 'succeeded' ? j.fineTunedModel : null,
  organization_id: j.tenant,
  status: j.status,
  hyperparameters: j.hyperparameters,
  total_steps: j.totalSteps,
  training_file: j.trainingFile,
  validation_file: j.validationFile,
  result_files: [],
  trained_tokens: j.trainedTokens,
  error: j.error,
  seed: j.seed,
  suffix: j.suffix,
  estimated_finish: null,
  publish: j.publish === null ? null : publishView(j.status, j.publish),
});

const publishView = (status: JobRecord['status'], p: PublishRecord): z.infer<typeof PublishResult> => ({
  repo: p.repo,
  private: p.private,
  revision: p.revision,
  // A job that did not succeed never publishes; its target stays 'pending' in the store.
  status: p.status === 'pending' && (status === 'failed' || status === 'cancelled') ? 'skipped' : p.status,
  url: p.url,
  commit: p.commit,
  error: p.error,
  finished_at: p.finishedAt,
});

export const eventView = (e: EventRecord): z.infer<typeof JobEvent> => ({
  id: e.id,
  object: 'fine_tuning.job.event',
  created_at: e.createdAt,
  level: e.level,
  message: e.message,
  type: e.type,
  data: e.data,
});

export const checkpointView = (c: CheckpointRecord): z.infer<typeof JobCheckpoint> => ({
  id: c.id,
  object: 'fine_tuning.job.checkpoint',
  created_at: c.createdAt,
  fine_tuned_model_checkpoint: c.modelId,
  fine_tuning_job_id: c.jobId,
  step_number: c.step,
  metrics: c.metrics,
});

export const listView = <R, V>(page: Page<R>, view: (r: R) => V) => ({ object: 'list' as const, data: page.data.map(view), has_more: page.hasMore });
