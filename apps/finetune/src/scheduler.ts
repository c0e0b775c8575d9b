import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurable } from '@deepen/core';
import type { BlobStore } from './blobs.js';
import { conflict } from './errors.js';
import { ID_PREFIX, newId, nowSeconds } from './ids.js';
import { JOURNAL_FILE, readJournal } from './journal.js';
import type { HubTokens } from './keys.js';
import type { ModelRegistry } from './models.js';
import { forkWorker, supervise } from './processes.js';
import { Publisher } from './publisher.js';
import type { CheckpointReport, JournaledMessage, TrainingCommand, TrainingMessage, TrainingSpec } from './worker/protocol.js';
import { ACTIVE_STATUSES, JOB_STATUSES, type CheckpointRecord, type EventLevel, type EventRecord, type JobRecord, type JournaledEntry, type Store } from './store/types.js';

export interface SchedulerOptions {
  store: Store;
  blobs: BlobStore;
  models: ModelRegistry;
  /** Job folders: <jobsDir>/<job id>/{spec.json, events.jsonl, worker.log, run/, model/}. */
  jobsDir: string;
  /** The built training worker entry. */
  workerPath: string;
  /** The built publishing worker entry. */
  publisherPath: string;
  /** The Hugging Face Hub that publish targets go to. */
  hubUrl: string;
  hubTokens: HubTokens;
  /** TensorFlow.js engine request for workers. */
  engine: string;
  /** Jobs trained at the same time. */
  concurrency: number;
  /** How long a stopping worker may take before it is killed. */
  stopGraceMs: number;
  log: (line: string) => void;
}

interface Worker {
  job: JobRecord;
  child: ChildProcess;
  /** Why the service asked it to stop, if it did. */
  stopReason: 'cancel' | 'shutdown' | null;
  /** It reported success or failure. */
  finished: boolean;
  lastStep: number;
  killTimer: NodeJS.Timeout | null;
  /** Resolves once its exit has been handled. */
  exited: Promise<void>;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Whether `pid` is a live training worker of this job (so that a recycled pid is never killed). */
function isWorkerOf(pid: number, jobId: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(jobId);
  } catch {
    return false; // no /proc: leave it alone rather than risk killing a stranger
  }
}

/** The event a journaled message becomes. */
function eventOf(jobId: string, m: JournaledMessage): Omit<EventRecord, 'seq'> {
  const event = (level: EventLevel, message: string, data: Record<string, unknown> | null, type: EventRecord['type'] = 'message') => ({
    id: newId(ID_PREFIX.event),
    jobId,
    createdAt: m.time,
    level,
    type,
    message,
    data,
  });
  switch (m.type) {
    case 'log':
      return event(m.level, m.message, m.data ?? null);
    case 'step':
      return event(
        'info',
        `Step ${m.step}/${m.totalSteps}: training loss=${m.loss.toFixed(4)}`,
        { step: m.step, total_steps: m.totalSteps, epoch: m.epoch, train_loss: m.loss, learning_rate: m.lr, tokens: m.tokens, tokens_per_second: m.tokensPerSecond },
        'metrics',
      );
    case 'validation':
      return event(
        'info',
        `Epoch ${m.epoch} (step ${m.step}): validation loss=${m.loss.toFixed(4)}, token accuracy=${m.accuracy.toFixed(4)}`,
        { step: m.step, epoch: m.epoch, valid_loss: m.loss, valid_mean_token_accuracy: m.accuracy, tokens: m.tokens },
        'metrics',
      );
    case 'checkpoint':
      return event('info', `Checkpoint saved at step ${m.checkpoint.step} (epoch ${m.checkpoint.metrics.epoch}).`, { step: m.checkpoint.step });
  }
}

/**
 * Runs fine-tuning jobs: validates their files, queues them, trains each in its own worker
 * process (at most `concurrency` at once), records what workers report, cancels, and after a
 * crash of the service puts interrupted jobs back in the queue to resume from their last
 * checkpoint.
 */
export class Scheduler {
  private readonly workers = new Map<string, Worker>();
  private readonly listeners = new Map<string, Set<() => void>>();
  private closing = false;
  private readonly validations = new Set<Promise<void>>();
  private ticking: Promise<void> = Promise.resolve();
  private readonly publisher: Publisher;

  constructor(private readonly o: SchedulerOptions) {
    this.publisher = new Publisher({
      store: o.store,
      models: o.models,
      jobsDir: o.jobsDir,
      workerPath: o.publisherPath,
      hubUrl: o.hubUrl,
      hubTokens: o.hubTokens,
      log: o.log,
      event: (jobId, level, message, data) => this.event(jobId, level, message, data ?? null),
      changed: (jobId) => this.notify(jobId),
    });
  }

  get activeWorkers(): number {
    return this.workers.size;
  }

  /** Whether a worker of this job is still running (a cancelled one may be finishing its step). */
  isTraining(jobId: string): boolean {
    return this.workers.has(jobId);
  }

  /**
   * Whether nothing more will happen to this job: it has ended, no process works on it, and
   * a succeeded job's publish target (if any) has been published or given up.
   */
  isSettled(job: JobRecord): boolean {
    if (ACTIVE_STATUSES.includes(job.status) || this.workers.has(job.id) || this.publisher.isPublishing(job.id)) return false;
    return !(job.status === 'succeeded' && (job.publish?.status === 'pending' || job.publish?.status === 'publishing'));
  }

  jobDir(jobId: string): string {
    return join(this.o.jobsDir, jobId);
  }

  /** Where a job's training processes write their output. */
  private workerLog(jobId: string): string {
    return join(this.jobDir(jobId), 'worker.log');
  }

  /** Calls `listener` whenever the job gets an event or changes status; returns the unsubscribe. */
  subscribe(jobId: string, listener: () => void): () => void {
    let set = this.listeners.get(jobId);
    if (!set) this.listeners.set(jobId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(jobId);
    };
  }

  private notify(jobId: string): void {
    for (const listener of this.listeners.get(jobId) ?? []) listener();
  }

  private async event(jobId: string, level: EventLevel, message: string, data: Record<string, unknown> | null = null, type: EventRecord['type'] = 'message'): Promise<void> {
    await this.o.store.addEvent({ id: newId(ID_PREFIX.event), jobId, createdAt: nowSeconds(), level, type, message, data });
    this.notify(jobId);
  }

  private async update(job: JobRecord, from: JobRecord['status'][], patch: Partial<JobRecord>): Promise<JobRecord | null> {
    const updated = await this.o.store.updateJob(job.id, from, patch);
    if (updated) this.notify(job.id);
    return updated;
  }

  /** Recovers from the previous run of the service, then starts queued jobs. */
  async start(): Promise<void> {
    const jobs = await this.o.store.jobsWithStatus(JOB_STATUSES);
    for (const job of jobs) {
      if (job.workerPid === null) continue;
      // A worker of a service that was killed may still be finishing a step: stop it before
      // anyone else touches the job's checkpoints.
      if (isWorkerOf(job.workerPid, job.id)) {
        process.kill(job.workerPid, 'SIGKILL');
        for (let i = 0; i < 100 && isWorkerOf(job.workerPid, job.id); i++) await new Promise((r) => setTimeout(r, 50));
        this.o.log(`stopped the training process ${job.workerPid} of ${job.id}, left over from the previous run`);
      }
      await this.o.store.updateJob(job.id, [job.status], { workerPid: null });
    }
    // A job that was running, or whose worker was still finishing, may have journaled more
    // than the service received: record it before the job goes on (and its stream with it).
    for (const job of jobs) if (job.status === 'running' || job.workerPid !== null) await this.replayJournal(job);
    for (const job of await this.o.store.jobsWithStatus(['running'])) {
      const requeued = await this.update(job, ['running'], { status: 'queued' });
      if (requeued) await this.event(job.id, 'warn', 'The service stopped while this job was running; it continues from its last checkpoint.');
    }
    for (const job of await this.o.store.jobsWithStatus(['validating_files'])) this.validateLater(job);
    this.tick();
    for (const job of await this.o.store.jobsAwaitingPublish()) void this.publisher.start(job);
  }

  /** Takes a newly created job: records it, then validates its files in the background. */
  async submit(job: JobRecord): Promise<void> {
    await this.event(job.id, 'info', `Created fine-tuning job ${job.id}.`);
    this.validateLater(job);
  }

  /** Validates in the background (see validated). */
  private validateLater(job: JobRecord): void {
    const validation = this.validate(job).finally(() => this.validations.delete(validation));
    this.validations.add(validation);
  }

  private async validate(job: JobRecord): Promise<void> {
    try {
      await this.event(job.id, 'info', 'Validating training files.');
      for (const [label, sha] of [['training', job.trainingSha256], ['validation', job.validationSha256]] as const) {
        if (sha === null) continue;
        if (!this.o.blobs.has(sha) || (await sha256Of(this.o.blobs.pathOf(sha))) !== sha) {
          await this.fail(job, ['validating_files'], { code: `invalid_${label}_file`, message: `the stored ${label} file is missing or damaged (expected SHA-256 ${sha})`, param: `${label}_file` });
          return;
        }
      }
      if (!this.o.models.baseModel(job.model)) {
        await this.fail(job, ['validating_files'], { code: 'model_not_available', message: `base model '${job.model}' is no longer available on this service`, param: 'model' });
        return;
      }
      if (await this.update(job, ['validating_files'], { status: 'queued' })) {
        await this.event(job.id, 'info', 'Files validated; the job is queued.');
        this.tick();
      }
    } catch (error) {
      this.o.log(`validating ${job.id}: ${(error as Error).stack ?? String(error)}`);
      await this.fail(job, ['validating_files'], { code: 'internal_error', message: 'validating the files failed; see the service log', param: null });
    }
  }

  private async fail(job: JobRecord, from: JobRecord['status'][], error: { code: string; message: string; param: string | null }): Promise<void> {
    if (await this.update(job, from, { status: 'failed', error, finishedAt: nowSeconds() })) {
      await this.event(job.id, 'error', `Fine-tuning job failed: ${error.message}`, { code: error.code });
    }
  }

  /** Starts queued jobs while there is room. */
  private tick(): void {
    this.ticking = this.ticking
      .then(async () => {
        while (!this.closing && this.workers.size < this.o.concurrency) {
          const job = await this.o.store.claimQueuedJob({});
          if (!job) return;
          this.notify(job.id);
          try {
            await this.launch(job);
          } catch (error) {
            this.o.log(`starting ${job.id}: ${(error as Error).stack ?? String(error)}`);
            await this.fail(job, ['running'], { code: 'internal_error', message: "the training process could not be started; the service's log has the details", param: null });
          }
        }
      })
      .catch((error: unknown) => this.o.log(`scheduler: ${(error as Error).stack ?? String(error)}`));
  }

  private async launch(queued: JobRecord): Promise<void> {
    const job = queued.startedAt === null ? ((await this.o.store.updateJob(queued.id, ['running'], { startedAt: nowSeconds() })) ?? queued) : queued;
    const base = this.o.models.baseModel(job.model);
    if (!base) {
      await this.fail(job, ['running'], { code: 'model_not_available', message: `base model '${job.model}' is no longer available on this service`, param: 'model' });
      return;
    }
    const dir = this.jobDir(job.id);
    const spec: TrainingSpec = {
      jobId: job.id,
      baseModelDir: base.dir,
      trainingFile: this.o.blobs.pathOf(job.trainingSha256),
      validationFile: job.validationSha256 === null ? null : this.o.blobs.pathOf(job.validationSha256),
      hyperparameters: job.hyperparameters,
      seed: job.seed,
      runDir: join(dir, 'run'),
      journal: join(dir, JOURNAL_FILE),
      modelDir: join(dir, 'model'),
      engine: this.o.engine,
    };
    const specPath = join(dir, 'spec.json');
    writeFileDurable(specPath, `${JSON.stringify(spec, null, 2)}\n`);
    await this.event(job.id, 'info', existsSync(join(dir, 'run', 'checkpoints')) ? 'Training process started (resuming).' : 'Training process started.');
    const child = forkWorker(this.o.workerPath, [specPath, job.id], this.workerLog(job.id));
    const worker: Worker = { job, child, stopReason: null, finished: false, lastStep: 0, killTimer: null, exited: Promise.resolve() };
    this.workers.set(job.id, worker);
    worker.exited = supervise<TrainingMessage>(child, {
      onMessage: (message) => this.onMessage(worker, message),
      onExit: (code, signal) => this.onExit(worker, code, signal),
      label: `job ${job.id}: training`,
      log: this.o.log,
    });
    if (child.pid !== undefined) await this.o.store.updateJob(job.id, ['running', 'cancelled'], { workerPid: child.pid });
  }

  private checkpointRecord(job: JobRecord, c: CheckpointReport, createdAt = nowSeconds()): CheckpointRecord {
    return { id: newId(ID_PREFIX.checkpoint), jobId: job.id, step: c.step, createdAt, modelId: `${job.fineTunedModel}:ckpt-step-${c.step}`, dir: c.dir, metrics: c.metrics };
  }

  private async recordCheckpoint(job: JobRecord, c: CheckpointReport): Promise<void> {
    await this.o.store.putCheckpoint(this.checkpointRecord(job, c));
  }

  /** Records journaled messages (received or replayed) that the job does not have yet; returns how many it did not. */
  private async recordJournaled(job: JobRecord, messages: JournaledMessage[]): Promise<number> {
    const entries: JournaledEntry[] = messages.map((m) => ({
      key: m.key,
      event: eventOf(job.id, m),
      checkpoint: m.type === 'checkpoint' ? this.checkpointRecord(job, m.checkpoint, m.time) : null,
    }));
    const added = await this.o.store.addJournaled(entries);
    if (added.length > 0) this.notify(job.id);
    return added.length;
  }

  /**
   * Records what a job's worker journaled but the service never received: it was killed, maybe
   * after being stopped for a while as its worker trained on and saved checkpoints. Called
   * once no worker of the job is left, before the job resumes from its newest checkpoint.
   */
  private async replayJournal(job: JobRecord): Promise<void> {
    const path = join(this.jobDir(job.id), JOURNAL_FILE);
    const messages = readJournal(path, (problem) => this.o.log(`warning: ${job.id}: ${problem}`));
    let added = 0;
    // In slices, so that a long job's journal never makes one huge transaction.
    for (let i = 0; i < messages.length; i += 1000) added += await this.recordJournaled(job, messages.slice(i, i + 1000));
    if (added > 0) this.o.log(`${job.id}: recorded ${added} event${added === 1 ? '' : 's'} from ${path} that the service had not received before it stopped`);
  }

  private async onMessage(worker: Worker, m: TrainingMessage): Promise<void> {
    const job = worker.job;
    switch (m.type) {
      case 'step':
        worker.lastStep = m.step;
        await this.recordJournaled(job, [m]);
        return;
      case 'log':
      case 'validation':
      case 'checkpoint':
        await this.recordJournaled(job, [m]);
        return;
      case 'checkpoints':
        for (const c of m.checkpoints) await this.recordCheckpoint(job, c);
        return;
      case 'stopped':
        worker.lastStep = m.step;
        if (m.checkpoint) await this.recordCheckpoint(job, m.checkpoint);
        if (worker.stopReason === 'cancel') {
          await this.event(job.id, 'info', `Training stopped at step ${m.step}${m.checkpoint ? `; the checkpoint at step ${m.checkpoint.step} is kept` : ''}.`, { step: m.step });
        }
        return;
      case 'succeeded': {
        worker.finished = true;
        const done = await this.update(job, ['running'], { status: 'succeeded', finishedAt: nowSeconds(), trainedTokens: m.trainedTokens });
        if (!done) return; // cancelled while finishing: the cancellation stands
        await this.o.store.insertModel({ id: job.fineTunedModel, tenant: job.tenant, jobId: job.id, baseModel: job.model, dir: m.modelDir, createdAt: nowSeconds() });
        await this.event(job.id, 'info', `The job has successfully completed; new model ${job.fineTunedModel}.`, { fine_tuned_model: job.fineTunedModel, trained_tokens: m.trainedTokens });
        return;
      }
      case 'failed':
        worker.finished = true;
        if (m.detail !== undefined) this.o.log(`job ${job.id}: training failed: ${m.detail}; its output is in ${this.workerLog(job.id)}`);
        await this.fail(job, ['running'], { code: m.code, message: m.message, param: null });
        return;
    }
  }

  private async onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    const job = worker.job;
    if (worker.killTimer) clearTimeout(worker.killTimer);
    this.workers.delete(job.id);
    const current = await this.o.store.findJob(job.id);
    if (current) await this.o.store.updateJob(job.id, [current.status], { workerPid: null });
    if (current?.status === 'running' && !worker.finished) {
      if (worker.stopReason === 'shutdown') {
        if (await this.update(job, ['running'], { status: 'queued' })) {
          await this.event(job.id, 'info', `The service is shutting down: paused at step ${worker.lastStep}; the job continues when the service starts again.`);
        }
      } else {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        // Where its output is stays in the operator's log: tenants never see server paths.
        this.o.log(`job ${job.id}: the training process ${how}; its output is in ${this.workerLog(job.id)}`);
        await this.fail(job, ['running'], { code: 'worker_crashed', message: `the training process ${how}; the service's log names its output`, param: null });
      }
    }
    this.notify(job.id);
    this.tick();
    // Publishing starts once the training process is gone (its memory freed, its pid cleared).
    if (current?.status === 'succeeded' && worker.finished && !this.closing) await this.publisher.start({ ...current, workerPid: null });
  }

  /** Cancels a job: a waiting one at once, a running one by stopping its worker after the current step. */
  async cancel(job: JobRecord): Promise<JobRecord> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const current = (await this.o.store.findJob(job.id))!;
      if (current.status === 'succeeded' || current.status === 'failed' || current.status === 'cancelled') {
        throw conflict(`Job ${job.id} has already ${current.status === 'succeeded' ? 'succeeded' : current.status === 'failed' ? 'failed' : 'been cancelled'}; only a job that is validating files, queued or running can be cancelled.`, 'job_not_cancellable');
      }
      const cancelled = await this.update(current, [current.status], { status: 'cancelled', finishedAt: nowSeconds() });
      if (!cancelled) continue; // its status moved on meanwhile: look again
      const worker = this.workers.get(job.id);
      if (worker && current.status === 'running') {
        await this.event(job.id, 'info', 'Job cancelled; stopping training after the current step.');
        this.stopWorker(worker, 'cancel');
      } else {
        await this.event(job.id, 'info', 'Job cancelled.');
      }
      return cancelled;
    }
    // The one conflict that is not final: the status moved three times in a row.
    throw conflict(`Job ${job.id} changed status while being cancelled; try again.`, 'job_busy', null, true);
  }

  private stopWorker(worker: Worker, reason: 'cancel' | 'shutdown'): void {
    worker.stopReason ??= reason;
    if (worker.child.connected) worker.child.send({ type: 'stop' } satisfies TrainingCommand);
    worker.killTimer ??= setTimeout(() => worker.child.kill('SIGKILL'), this.o.stopGraceMs);
  }

  /**
   * Waits until no job's files are being validated, for the service to close the database
   * after its last request: a job may be created while the service drains.
   */
  async validated(): Promise<void> {
    while (this.validations.size > 0) await Promise.all(this.validations);
  }

  /** Stops every worker (each saves a checkpoint after its current step) and every upload, and waits for them. */
  async shutdown(): Promise<void> {
    this.closing = true;
    for (const worker of this.workers.values()) this.stopWorker(worker, 'shutdown');
    await Promise.all([...this.workers.values()].map((w) => w.exited));
    await this.publisher.shutdown();
    await this.ticking;
  }
}
