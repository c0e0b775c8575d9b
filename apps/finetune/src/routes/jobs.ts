import { randomInt } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { ServiceContext } from '../context.js';
import { badRequest, notFound } from '../errors.js';
import { ID_PREFIX, isId, newId, nowSeconds } from '../ids.js';
import { defineRoute, HANDLED, type Route } from '../http/routes.js';
import { resolveHyperparameters } from '../plan.js';
import { CreateJobRequest, EventsQuery, FineTuningJob, FineTuningJobList, JobCheckpointList, JobEventList, PageQuery } from '../schemas.js';
import type { FileRecord, JobRecord, PublishRecord } from '../store/types.js';
import { checkpointView, eventView, jobView, listView } from '../views.js';
import { paged } from './paging.js';

/** A job of this tenant, or the same 404 whether it is missing, malformed or someone else's. */
async function ownJob(ctx: ServiceContext, tenant: string, id: string): Promise<JobRecord> {
  const job = isId(ID_PREFIX.job, id) ? await ctx.store.getJob(tenant, id) : null;
  if (!job) throw notFound('fine-tuning job', id, 'job_not_found', 'fine_tuning_job_id');
  return job;
}

/** A file named in a request body: the tenant's own, else a 400 on that field. */
async function referencedFile(ctx: ServiceContext, tenant: string, id: string, field: string): Promise<FileRecord> {
  const file = isId(ID_PREFIX.file, id) ? await ctx.store.getFile(tenant, id) : null;
  if (!file) throw badRequest(`Invalid value for '${field}': no file '${id}' found.`, 'file_not_found', field);
  return file;
}

/** A job's publish target as requested; refused unless the operator gave this tenant a Hugging Face token. */
function publishTarget(ctx: ServiceContext, tenant: string, request: NonNullable<z.output<typeof CreateJobRequest>['publish']>): PublishRecord {
  if (ctx.hubTokens.tokenOf(tenant) === null) {
    throw badRequest(
      `Invalid value for 'publish': tenant '${tenant}' has no Hugging Face token on this service, so it cannot publish; the operator adds one to the tenant's entry in the keys file ("hf_token_file").`,
      'hub_token_missing',
      'publish',
    );
  }
  return { repo: request.repo, private: request.private ?? true, revision: request.revision ?? 'main', status: 'pending', url: null, commit: null, error: null, startedAt: null, finishedAt: null };
}

const SSE_POLL_MS = 1000;
const SSE_HEARTBEAT_MS = 15_000;

/**
 * Streams a job's events as Server-Sent Events: everything after `fromSeq`, then new events as
 * they are recorded, until the job has finished and its worker has stopped; then `[DONE]`.
 */
async function streamEvents(ctx: ServiceContext, job: JobRecord, fromSeq: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  res.write(': events of ' + job.id + '\n\n');
  let seq = fromSeq;
  let closed = false;
  let running: Promise<void> | null = null;
  let again = false;
  const finish = () => {
    if (closed) return;
    closed = true;
    unsubscribe();
    clearInterval(poll);
    clearInterval(heartbeat);
    res.end();
  };
  const flush = async () => {
    for (;;) {
      const events = await ctx.store.eventsSince(job.id, seq, 500);
      for (const e of events) res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(eventView(e))}\n\n`);
      if (events.length > 0) seq = events.at(-1)!.seq;
      if (events.length < 500) break;
    }
    const current = await ctx.store.findJob(job.id);
    if (current && ctx.scheduler.isSettled(current)) {
      // One more read: events written while the status was being checked.
      const last = await ctx.store.eventsSince(job.id, seq, 500);
      for (const e of last) res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(eventView(e))}\n\n`);
      res.write('data: [DONE]\n\n');
      finish();
    }
  };
  const wake = () => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = flush()
      .catch(() => finish())
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          wake();
        }
      });
  };
  const unsubscribe = ctx.scheduler.subscribe(job.id, wake);
  // Polling as well picks up events that another service instance writes to a shared store.
  const poll = setInterval(wake, SSE_POLL_MS);
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), SSE_HEARTBEAT_MS);
  req.on('close', finish);
  wake();
}

export function jobRoutes(ctx: ServiceContext): Route[] {
  return [
    defineRoute({
      method: 'POST',
      path: '/v1/fine_tuning/jobs',
      operationId: 'createFineTuningJob',
      tag: 'Fine-tuning',
      summary: 'Create a fine-tuning job',
      description:
        'Supervised fine-tuning of a base model on an uploaded file: the loss counts only completion / assistant tokens. ' +
        'The job starts in validating_files, then queued, running, and ends succeeded, failed or cancelled. ' +
        'Validation loss and token accuracy are measured and a checkpoint is saved after every epoch. ' +
        "With `publish`, the fine-tuned model is then uploaded to the Hugging Face Hub with the tenant's own token (configured on the service; 400 without one); " +
        'the job succeeds when training does, and `publish.status` follows the upload.',
      body: CreateJobRequest,
      response: FineTuningJob,
      errors: [400, 413, 415],
      async handle({ body, tenant }) {
        const base = ctx.models.baseModel(body.model);
        if (!base) throw badRequest(`Invalid value for 'model': no base model '${body.model}' (GET /v1/models lists them).`, 'model_not_found', 'model');
        const training = await referencedFile(ctx, tenant, body.training_file, 'training_file');
        const validation = body.validation_file ? await referencedFile(ctx, tenant, body.validation_file, 'validation_file') : null;
        const publish = body.publish ? publishTarget(ctx, tenant, body.publish) : null;
        const { hyperparameters, totalSteps } = resolveHyperparameters(body.hyperparameters ?? {}, { examples: training.examples, contextLength: base.contextLength });
        const id = newId(ID_PREFIX.job);
        const suffix = body.suffix ?? null;
        const job: JobRecord = {
          id,
          tenant,
          model: base.id,
          trainingFile: training.id,
          validationFile: validation?.id ?? null,
          trainingSha256: training.sha256,
          validationSha256: validation?.sha256 ?? null,
          hyperparameters,
          totalSteps,
          suffix,
          seed: body.seed ?? randomInt(2_147_483_647),
          status: 'validating_files',
          error: null,
          fineTunedModel: `ft:${base.id}:${tenant}${suffix ? `:${suffix}` : ''}:${id.slice(ID_PREFIX.job.length, ID_PREFIX.job.length + 12)}`,
          createdAt: nowSeconds(),
          startedAt: null,
          finishedAt: null,
          trainedTokens: null,
          publish,
          workerPid: null,
        };
        await ctx.store.insertJob(job);
        await ctx.scheduler.submit(job);
        return jobView(job);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/fine_tuning/jobs',
      operationId: 'listFineTuningJobs',
      tag: 'Fine-tuning',
      summary: "List the tenant's fine-tuning jobs, newest first",
      query: PageQuery,
      response: FineTuningJobList,
      errors: [400],
      async handle({ query, tenant }) {
        return listView(await paged(() => ctx.store.listJobs(tenant, { limit: query.limit, ...(query.after ? { after: query.after } : {}) })), jobView);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/fine_tuning/jobs/{fine_tuning_job_id}',
      operationId: 'retrieveFineTuningJob',
      tag: 'Fine-tuning',
      summary: 'Retrieve a fine-tuning job',
      response: FineTuningJob,
      errors: [404],
      async handle({ params, tenant }) {
        return jobView(await ownJob(ctx, tenant, params.fine_tuning_job_id as string));
      },
    }),
    defineRoute({
      method: 'POST',
      path: '/v1/fine_tuning/jobs/{fine_tuning_job_id}/cancel',
      operationId: 'cancelFineTuningJob',
      tag: 'Fine-tuning',
      summary: 'Cancel a fine-tuning job',
      description: 'A running job stops after its current step and keeps its last checkpoint. A job that has already finished answers 409.',
      response: FineTuningJob,
      errors: [404, 409],
      async handle({ params, tenant }) {
        return jobView(await ctx.scheduler.cancel(await ownJob(ctx, tenant, params.fine_tuning_job_id as string)));
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/fine_tuning/jobs/{fine_tuning_job_id}/events',
      operationId: 'listFineTuningEvents',
      tag: 'Fine-tuning',
      summary: "A job's events: newest first, or streamed",
      description:
        'Without `stream`: a page of events, newest first. With `stream=true`: Server-Sent Events (`id` is the event id, `event` its type, `data` the event object) ' +
        'from the first event, or after `after` / the Last-Event-ID header, live until the job ends (and, for a succeeded job with a publish target, until it is published or has failed); ' +
        'the stream closes with `data: [DONE]`.',
      query: EventsQuery,
      response: JobEventList,
      stream: true,
      errors: [400, 404],
      async handle({ params, query, tenant, req, res }) {
        const job = await ownJob(ctx, tenant, params.fine_tuning_job_id as string);
        if (query.stream === 'true') {
          const headerId = req.headers['last-event-id'];
          const cursor = query.after ?? (typeof headerId === 'string' && headerId !== '' ? headerId : undefined);
          let seq = 0;
          if (cursor !== undefined) {
            const found = await ctx.store.eventSeq(job.id, cursor);
            if (found === null) throw badRequest(`No event '${cursor}' in this job's events.`, 'invalid_value', query.after !== undefined ? 'after' : 'Last-Event-ID');
            seq = found;
          }
          await streamEvents(ctx, job, seq, req, res);
          return HANDLED;
        }
        return listView(await paged(() => ctx.store.listEvents(job.id, { limit: query.limit, ...(query.after ? { after: query.after } : {}) })), eventView);
      },
    }),
    defineRoute({
      method: 'GET',
      path: '/v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints',
      operationId: 'listFineTuningCheckpoints',
      tag: 'Fine-tuning',
      summary: "A job's checkpoints, newest first",
      description: 'One per epoch (and one where a cancelled job stopped), with training loss, validation loss and token accuracy. Each can be tried through its fine_tuned_model_checkpoint id.',
      query: PageQuery,
      response: JobCheckpointList,
      errors: [400, 404],
      async handle({ params, query, tenant }) {
        const job = await ownJob(ctx, tenant, params.fine_tuning_job_id as string);
        return listView(await paged(() => ctx.store.listCheckpoints(job.id, { limit: query.limit, ...(query.after ? { after: query.after } : {}) })), checkpointView);
      },
    }),
  ];
}
