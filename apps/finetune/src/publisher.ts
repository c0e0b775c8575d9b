import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { writeFileDurable } from '@deepen/core';
import { formatBytes, redact, type ModelCardOptions, type ResolvedToken } from '@deepen/hub';
import { nowSeconds } from './ids.js';
import type { HubTokens } from './keys.js';
import type { ModelRegistry } from './models.js';
import { forkWorker, supervise } from './processes.js';
import type { CheckpointMetrics, EventLevel, FileRecord, JobRecord, PublishRecord, Store } from './store/types.js';
import type { PublishCommand, PublishMessage, PublishSpec } from './worker/protocol.js';

export interface PublisherOptions {
  store: Store;
  models: ModelRegistry;
  jobsDir: string;
  /** The built publishing worker entry. */
  workerPath: string;
  /** The Hub to publish to. */
  hubUrl: string;
  hubTokens: HubTokens;
  log: (line: string) => void;
  /** Records a job event (and wakes its listeners). */
  event: (jobId: string, level: EventLevel, message: string, data?: Record<string, unknown> | null) => Promise<void>;
  /** Wakes the job's listeners after a change without an event. */
  changed: (jobId: string) => void;
}

interface Upload {
  jobId: string;
  target: PublishRecord;
  child: ChildProcess;
  token: ResolvedToken;
  /** It reported success or failure. */
  finished: boolean;
  /** The service asked it to stop (shutting down). */
  stopping: boolean;
  /** Resolves once its exit has been handled. */
  exited: Promise<void>;
}

const percent = (fraction: number) => `${Math.round(fraction * 100)}%`;

/** The model card's account of the fine-tune: what the checkpoint's files cannot tell. */
export function fineTuningSection(job: JobRecord, o: { baseRepo: string | null; hubUrl: string; file: FileRecord | null; last: CheckpointMetrics | null }): string {
  const hp = job.hyperparameters;
  const base = `\`${job.model}\`${o.baseRepo ? ` ([${o.baseRepo}](${o.hubUrl}/${o.baseRepo}))` : ''}`;
  const rows: Array<[string, string]> = [
    ['base model', base],
    ['examples', o.file ? `${o.file.examples} (${o.file.format === 'chat' ? 'conversations' : 'prompt → completion pairs'})` : 'n/a'],
    ['steps', `${job.totalSteps} (${hp.n_epochs} epoch${hp.n_epochs === 1 ? '' : 's'}, batch ${hp.batch_size})`],
    ['trained tokens', job.trainedTokens === null ? 'n/a' : job.trainedTokens.toLocaleString('en-US')],
    ['optimizer', `AdamW without weight decay, peak learning rate ${hp.learning_rate}, ${hp.warmup} warmup step${hp.warmup === 1 ? '' : 's'} then linear decay to 0, gradient clipping 1`],
    ['longest sequence', `${hp.max_seq_len} tokens`],
    ['seed', String(job.seed)],
  ];
  if (o.last) {
    rows.push(['final training loss', o.last.train_loss.toFixed(4)]);
    if (o.last.valid_loss !== null) rows.push(['final validation loss', `${o.last.valid_loss.toFixed(4)} (token accuracy ${(o.last.valid_mean_token_accuracy ?? 0).toFixed(4)})`]);
  }
  return [
    `Fine-tuned from ${base} with deepen's fine-tuning service: supervised fine-tuning with the loss on completion (assistant) tokens only; the base model's architecture and normalization scheme are kept.` +
      (o.file?.format === 'chat' ? ' Conversations use the Zephyr chat template: each message is `<|role|>\\n{content}</s>`, and a reply is prompted with `\\n<|assistant|>\\n`.' : ''),
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
  ].join('\n');
}

/**
 * Publishes fine-tuned models to the Hugging Face Hub, each in its own process (so a slow or
 * failing upload never holds up the API), with the token of the job's tenant handed over IPC.
 * The outcome goes on the job's publish record and into its events; a failed upload leaves
 * the job succeeded and its model usable.
 */
export class Publisher {
  private readonly uploads = new Map<string, Upload>();
  private closing = false;

  constructor(private readonly o: PublisherOptions) {}

  isPublishing(jobId: string): boolean {
    return this.uploads.has(jobId);
  }

  private async record(jobId: string, target: PublishRecord, patch: Partial<PublishRecord>): Promise<PublishRecord | null> {
    const next = { ...target, ...patch };
    const updated = await this.o.store.updateJob(jobId, ['succeeded'], { publish: next });
    if (updated) this.o.changed(jobId);
    return updated ? next : null;
  }

  /** Where a job's publishing processes write their output. */
  private publishLog(jobId: string): string {
    return join(this.o.jobsDir, jobId, 'publish.log');
  }

  private async fail(jobId: string, target: PublishRecord, code: string, message: string, status: number | null = null): Promise<void> {
    if (await this.record(jobId, target, { status: 'failed', error: { code, message }, finishedAt: nowSeconds() })) {
      await this.o.event(jobId, 'error', `Publishing to ${target.repo} failed: ${message}`, { code, ...(status !== null ? { status } : {}) });
    }
  }

  /**
   * Publishes a succeeded job's model: on its first try, or again after the service stopped
   * during an upload (publishing the same files twice is harmless: at worst a second commit
   * with the same content).
   */
  async start(job: JobRecord): Promise<void> {
    const target = job.publish;
    if (this.closing || this.uploads.has(job.id) || job.status !== 'succeeded' || !target || (target.status !== 'pending' && target.status !== 'publishing')) return;
    try {
      await this.launch(job, target);
    } catch (error) {
      this.o.log(`publishing ${job.id}: ${(error as Error).stack ?? String(error)}`);
      await this.fail(job.id, target, 'internal_error', "the publishing process could not be started; the service's log has the details");
    }
  }

  private async launch(job: JobRecord, pending: PublishRecord): Promise<void> {
    const token = this.o.hubTokens.tokenOf(job.tenant);
    if (!token) {
      await this.fail(job.id, pending, 'hub_token_missing', `tenant '${job.tenant}' has no Hugging Face token configured on this service (any more); the fine-tuned model stays usable here`);
      return;
    }
    const model = await this.o.store.getModel(job.tenant, job.fineTunedModel);
    if (!model) {
      await this.fail(job.id, pending, 'internal_error', `the fine-tuned model ${job.fineTunedModel} is not on record`);
      return;
    }
    const resumed = pending.status === 'publishing';
    const target = await this.record(job.id, pending, { status: 'publishing', startedAt: nowSeconds(), url: null, commit: null, error: null, finishedAt: null });
    if (!target) return;
    await this.o.event(
      job.id,
      resumed ? 'warn' : 'info',
      resumed
        ? `The service stopped while publishing; publishing to ${target.repo} again.`
        : `Publishing ${job.fineTunedModel} to ${target.repo}${target.revision === 'main' ? '' : `@${target.revision}`} on ${this.o.hubUrl}.`,
      { repo: target.repo, revision: target.revision, private: target.private },
    );

    const baseRepo = this.o.models.baseModel(job.model)?.hubRepo ?? null;
    const file = await this.o.store.getFile(job.tenant, job.trainingFile);
    const last = (await this.o.store.listCheckpoints(job.id, { limit: 1 })).data[0]?.metrics ?? null;
    const card: ModelCardOptions = {
      ...(baseRepo ? { baseModel: baseRepo } : {}),
      tags: ['fine-tuned'],
      sections: [{ heading: 'Fine-tuning', body: fineTuningSection(job, { baseRepo, hubUrl: this.o.hubUrl, file, last }) }],
    };
    const dir = join(this.o.jobsDir, job.id);
    const spec: PublishSpec = {
      jobId: job.id,
      modelDir: model.dir,
      repo: target.repo,
      private: target.private,
      revision: target.revision,
      hubUrl: this.o.hubUrl,
      commitMessage: `Fine-tune of ${job.model} (${job.id}) with deepen`,
      card,
    };
    const specPath = join(dir, 'publish.json');
    writeFileDurable(specPath, `${JSON.stringify(spec, null, 2)}\n`);
    const child = forkWorker(this.o.workerPath, [specPath, job.id], this.publishLog(job.id));
    const upload: Upload = { jobId: job.id, target, child, token, finished: false, stopping: false, exited: Promise.resolve() };
    this.uploads.set(job.id, upload);
    upload.exited = supervise<PublishMessage>(child, {
      onMessage: (message) => this.onMessage(upload, message),
      onExit: (code, signal) => this.onExit(upload, code, signal),
      label: `job ${job.id}: publishing`,
      log: this.o.log,
    });
    if (child.pid !== undefined) await this.o.store.updateJob(job.id, ['succeeded'], { workerPid: child.pid });
  }

  private async onMessage(upload: Upload, m: PublishMessage): Promise<void> {
    const { jobId, target } = upload;
    // Whatever the worker says is stored and shown: make sure the token is not in it.
    const safe = (text: string) => redact(text, upload.token.value);
    switch (m.type) {
      case 'ready':
        if (upload.child.connected) upload.child.send({ type: 'token', token: upload.token } satisfies PublishCommand);
        return;
      case 'progress':
        await this.o.event(
          jobId,
          'info',
          m.fraction >= 1 ? `Uploaded ${m.path} (${formatBytes(m.size)}).` : `Uploading ${m.path}: ${percent(m.fraction)} of ${formatBytes(m.size)}.`,
          { file: m.path, bytes: m.size, fraction: m.fraction },
        );
        return;
      case 'retry':
        await this.o.event(jobId, 'warn', safe(`The Hub answered ${m.reason} to ${m.request}; trying again in ${(m.delayMs / 1000).toFixed(1)}s (attempt ${m.attempt + 1}).`), { attempt: m.attempt + 1 });
        return;
      case 'published': {
        upload.finished = true;
        if (await this.record(jobId, target, { status: 'published', url: m.url, commit: m.commit, error: null, finishedAt: nowSeconds() })) {
          await this.o.event(jobId, 'info', `Published to ${m.url} (commit ${m.commit.slice(0, 12)}).`, { repo: target.repo, revision: target.revision, url: m.url, commit: m.commit, created: m.created, files: m.files });
        }
        return;
      }
      case 'failed':
        upload.finished = true;
        if (m.detail !== undefined) this.o.log(`job ${jobId}: publishing failed: ${safe(m.detail)}; its output is in ${this.publishLog(jobId)}`);
        await this.fail(jobId, target, m.code, safe(m.message), m.status);
        return;
    }
  }

  private async onExit(upload: Upload, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    const { jobId, target } = upload;
    this.uploads.delete(jobId);
    await this.o.store.updateJob(jobId, ['succeeded'], { workerPid: null });
    if (!upload.finished) {
      if (upload.stopping) {
        await this.o.event(jobId, 'info', `The service is shutting down: publishing to ${target.repo} stops and starts again when the service starts.`);
      } else {
        const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        // Where its output is stays in the operator's log: tenants never see server paths.
        this.o.log(`job ${jobId}: the publishing process ${how}; its output is in ${this.publishLog(jobId)}`);
        await this.fail(jobId, target, 'publisher_crashed', `the publishing process ${how}; the service's log names its output`);
      }
    }
    this.o.changed(jobId);
  }

  /** Stops every upload (each starts again at the next start) and waits for them. */
  async shutdown(): Promise<void> {
    this.closing = true;
    for (const upload of this.uploads.values()) {
      upload.stopping = true;
      upload.child.kill('SIGTERM');
    }
    await Promise.all([...this.uploads.values()].map((u) => u.exited));
  }
}
