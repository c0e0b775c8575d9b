import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FineTuningJob, JobCheckpointList } from '../src/schemas.js';
import { allEvents, client, COLORS, finished, jsonl, keysFile, makeBaseModel, readSse, startService, tempDir, waitForEvent, waitForJob, type Client, type Json, type ServiceProcess } from './helpers.js';

let dataDir: string;
let key: string;
let service: ServiceProcess;
let api: Client;
let trainingFile: string;

const HYPERPARAMETERS = { n_epochs: 40, batch_size: 2, learning_rate: 2e-2, warmup: 3 };

const start = async () => {
  service = await startService(dataDir, { args: ['--keys-file', join(dataDir, 'keys.json')] });
  api = client(service.url, key);
};

beforeAll(async () => {
  dataDir = tempDir('durable');
  await makeBaseModel(join(dataDir, 'models', 'tiny-lns'));
  // A base model whose weights a test takes away once the service has listed it.
  await makeBaseModel(join(dataDir, 'models', 'fragile-lns'));
  key = keysFile(join(dataDir, 'keys.json'), ['acme']).acme!;
  await start();
  trainingFile = (await api.upload(jsonl(COLORS))).body.id;
});

afterAll(async () => {
  await service.stop();
});

/** Training loss per step, as the events report it. */
const lossesByStep = (events: Json[]) => {
  const losses = new Map<number, number>();
  for (const e of events) if (e.type === 'metrics' && e.data.train_loss !== undefined) losses.set(e.data.step, e.data.train_loss);
  return [...losses.entries()].sort((a, b) => a[0] - b[0]).map(([, loss]) => loss);
};

/** Processes whose command line names this job (its training worker). */
const workersOf = (jobId: string) =>
  readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(jobId);
      } catch {
        return false;
      }
    });

/** The step of the newest checkpoint a job's worker has saved on disk. */
const newestCheckpoint = (jobId: string) =>
  Math.max(
    0,
    ...readdirSync(join(dataDir, 'jobs', jobId, 'run', 'checkpoints'))
      .filter((name) => /^step-\d+$/.test(name))
      .map((name) => Number(name.slice('step-'.length))),
  );

describe('durability', () => {
  it('resumes a job after the service is killed with SIGKILL, with the loss curve of an uninterrupted run', async () => {
    const create = async () => {
      const r = await api.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFile, hyperparameters: HYPERPARAMETERS, seed: 3 });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return FineTuningJob.parse(r.body);
    };
    const reference = await create();
    expect((await waitForJob(api, reference.id, finished)).status).toBe('succeeded');
    const referenceLosses = lossesByStep(await allEvents(api, reference.id));
    expect(referenceLosses).toHaveLength(120);

    const job = await create();
    // Kill the service as soon as the job has a checkpoint past its first epoch.
    await waitForEvent(service.url, key, job.id, (e) => e.message.startsWith('Checkpoint saved') && e.data.step >= 6);
    await service.kill();
    // The orphaned worker notices the service is gone and stops too.
    for (let i = 0; i < 100 && workersOf(job.id).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(workersOf(job.id)).toEqual([]);

    await start();
    const before = (await api.get(`/v1/fine_tuning/jobs/${job.id}`)).body;
    expect(['queued', 'running']).toContain(before.status);
    const done = await waitForJob(api, job.id, finished);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const events = await allEvents(api, job.id);
    const messages = events.map((e) => e.message);
    expect(messages).toContain('The service stopped while this job was running; it continues from its last checkpoint.');
    const resumedAt = Number(/^Resuming from the checkpoint at step (\d+) of 120\.$/.exec(messages.find((m: string) => m.startsWith('Resuming'))!)![1]);
    expect(resumedAt).toBeGreaterThanOrEqual(6);
    expect(resumedAt).toBeLessThan(120);
    // Exact resume: the same loss at every step as the job that was never interrupted, and
    // one event per step (those trained again after the checkpoint are not reported twice).
    expect(lossesByStep(events)).toEqual(referenceLosses);
    expect(events.filter((e) => e.type === 'metrics').map((e) => e.data.step)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    const checkpoints = JobCheckpointList.parse((await api.get(`/v1/fine_tuning/jobs/${job.id}/checkpoints?limit=100`)).body);
    expect(checkpoints.data.map((c) => c.step_number).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => 3 * (i + 1)));
    // Nothing acknowledged before the kill is gone: the file, both jobs, the early events.
    expect((await api.get('/v1/files')).body.data.map((f: Json) => f.id)).toEqual([trainingFile]);
    expect((await api.get('/v1/fine_tuning/jobs')).body.data.map((j: Json) => j.id)).toEqual([job.id, reference.id]);
    expect(messages[0]).toBe(`Created fine-tuning job ${job.id}.`);
  });

  it('records every step and checkpoint exactly once when the service is paused, then killed, while its worker trains on', async () => {
    // 24 examples in batches of 2: 12 steps an epoch, 600 steps, a checkpoint every 12 steps.
    const file = (await api.upload(jsonl(Array.from({ length: 4 }, () => COLORS).flat()), 'colors-x4.jsonl')).body.id;
    const r = await api.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: file, hyperparameters: { ...HYPERPARAMETERS, n_epochs: 50 }, seed: 5 });
    const job = FineTuningJob.parse(r.body);
    await waitForEvent(service.url, key, job.id, (e) => e.data?.step === 40);
    // The service stops taking anything in (SIGSTOP stands in for a long GC pause, a slow disk or
    // CPU starvation) while its worker goes on training and saving checkpoints, then dies.
    process.kill(service.child.pid!, 'SIGSTOP');
    // 1.5 s, and on a slow machine until the worker has saved two more checkpoints.
    const paused = Date.now();
    while (Date.now() - paused < 1500 || (newestCheckpoint(job.id) < 40 + 2 * 12 && Date.now() - paused < 30_000)) await new Promise((r) => setTimeout(r, 100));
    await service.kill();
    for (let i = 0; i < 100 && workersOf(job.id).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(workersOf(job.id)).toEqual([]);
    // The worker did get ahead: it saved checkpoints that the service never heard of.
    expect(newestCheckpoint(job.id)).toBeGreaterThanOrEqual(40 + 2 * 12);

    await start();
    const done = await waitForJob(api, job.id, finished);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const events = await allEvents(api, job.id);
    // Each step's metrics, and after every 12th step its checkpoint, once each and in order.
    const progress = events.flatMap((e: Json) =>
      e.type === 'metrics' && e.data.train_loss !== undefined ? [`step ${e.data.step}`] : e.message.startsWith('Checkpoint saved') ? [`checkpoint ${e.data.step}`] : [],
    );
    const expected = Array.from({ length: 600 }, (_, i) => (i + 1) % 12 === 0 ? [`step ${i + 1}`, `checkpoint ${i + 1}`] : [`step ${i + 1}`]).flat();
    expect(progress).toEqual(expected);
    expect(events.map((e: Json) => e.message)).toContain('The service stopped while this job was running; it continues from its last checkpoint.');
  });

  it('cancels a running job within seconds, keeping its last checkpoint; a queued one at once', async () => {
    const long = FineTuningJob.parse((await api.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFile, hyperparameters: { ...HYPERPARAMETERS, n_epochs: 100 } })).body);
    const queued = FineTuningJob.parse((await api.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFile })).body);
    await waitForJob(api, long.id, (j) => j.status === 'running');
    await waitForJob(api, queued.id, (j) => j.status === 'queued'); // one job at a time by default

    const cancelledQueued = await api.post(`/v1/fine_tuning/jobs/${queued.id}/cancel`);
    expect(cancelledQueued.status).toBe(200);
    expect(cancelledQueued.body).toMatchObject({ status: 'cancelled', fine_tuned_model: null });

    // Let it train a little, then cancel; the event stream ends once the worker has stopped.
    await waitForEvent(service.url, key, long.id, (e) => e.data?.step === 10);
    const cancelled = await api.post(`/v1/fine_tuning/jobs/${long.id}/cancel`);
    expect(cancelled.body.status).toBe('cancelled');
    const requested = Date.now();
    const stream = await readSse(`${service.url}/v1/fine_tuning/jobs/${long.id}/events?stream=true`, { authorization: `Bearer ${key}` }, { timeoutMs: 30_000 });
    expect(stream.frames.at(-1)!.data).toBe('[DONE]');
    expect(Date.now() - requested).toBeLessThan(10_000);
    const job = (await api.get(`/v1/fine_tuning/jobs/${long.id}`)).body;
    expect(job).toMatchObject({ status: 'cancelled', fine_tuned_model: null });
    const events = await allEvents(api, long.id);
    const stopped = events.find((e) => e.message.startsWith('Training stopped at step'));
    expect(stopped.message).toMatch(/^Training stopped at step (\d+); the checkpoint at step \1 is kept\.$/);
    const step = stopped.data.step;
    expect(step).toBeGreaterThanOrEqual(10);
    expect(step).toBeLessThan(300);
    const checkpoints = JobCheckpointList.parse((await api.get(`/v1/fine_tuning/jobs/${long.id}/checkpoints`)).body);
    expect(checkpoints.data[0]!.step_number).toBe(step);
    // The kept checkpoint is a model one can try.
    const tried = await api.post('/v1/completions', { model: checkpoints.data[0]!.fine_tuned_model_checkpoint, prompt: 'Snow is', max_tokens: 3, temperature: 0 });
    expect(tried.status, JSON.stringify(tried.body)).toBe(200);
    expect(workersOf(long.id)).toEqual([]);

    const again = await api.post(`/v1/fine_tuning/jobs/${long.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'job_not_cancellable', type: 'conflict_error' });
    expect(again.body.error.message).toMatch(/has already been cancelled/);
    expect((await api.get(`/v1/fine_tuning/jobs/${queued.id}`)).body.status).toBe('cancelled');
  });

  it('pauses running jobs on SIGTERM and resumes them at the next start', async () => {
    const job = FineTuningJob.parse((await api.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFile, hyperparameters: { ...HYPERPARAMETERS, n_epochs: 60 } })).body);
    await waitForEvent(service.url, key, job.id, (e) => e.data?.step === 5);
    expect(await service.stop()).toBe(0);
    await start();
    const done = await waitForJob(api, job.id, finished);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const messages = (await allEvents(api, job.id)).map((e) => e.message);
    expect(messages.some((m) => /^The service is shutting down: paused at step \d+; the job continues when the service starts again\.$/.test(m))).toBe(true);
    expect(messages.some((m) => m.startsWith('Resuming from the checkpoint at step'))).toBe(true);
  });
});

describe('failures', () => {
  /** A failed job's error and events, checked for anything that names a place on the server. */
  const expectNoServerPaths = async (jobId: string) => {
    const job = (await api.get(`/v1/fine_tuning/jobs/${jobId}`)).body;
    const shown = [job.error.message, ...(await allEvents(api, jobId)).map((e) => `${e.message} ${JSON.stringify(e.data)}`)];
    for (const text of shown) {
      expect(text).not.toContain(dataDir);
      expect(text).not.toMatch(/(^|[\s'"(])\/(tmp|home|root|usr|var|work)\//);
    }
    return job;
  };

  it("says that a job's training process died without showing tenants where its log is", async () => {
    const job = FineTuningJob.parse((await api.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFile, hyperparameters: { ...HYPERPARAMETERS, n_epochs: 100 } })).body);
    await waitForEvent(service.url, key, job.id, (e) => e.data?.step === 5);
    for (const pid of workersOf(job.id)) process.kill(Number(pid), 'SIGKILL');
    const failed = await waitForJob(api, job.id, finished);
    expect(failed.status).toBe('failed');
    expect(failed.error).toEqual({ code: 'worker_crashed', message: "the training process was killed by SIGKILL; the service's log names its output", param: null });
    await expectNoServerPaths(job.id);
    // The operator's log has the place.
    expect(service.output()).toContain(`job ${job.id}: the training process was killed by SIGKILL; its output is in ${join(dataDir, 'jobs', job.id, 'worker.log')}`);
  });

  it('keeps the server paths of an unexpected training error in the service log', async () => {
    rmSync(join(dataDir, 'models', 'fragile-lns', 'model.safetensors'));
    const job = FineTuningJob.parse((await api.post('/v1/fine_tuning/jobs', { model: 'fragile-lns', training_file: trainingFile })).body);
    const failed = await waitForJob(api, job.id, finished);
    expect(failed.status).toBe('failed');
    expect(failed.error.code).toBe('training_error');
    // Named for what it is to the tenant: the base model, not its folder on the server.
    expect(failed.error.message).toBe("training stopped on an unexpected error: the base model's model.safetensors: weights file not found; the service's log has the details");
    await expectNoServerPaths(job.id);
    expect(service.output()).toMatch(new RegExp(`job ${job.id}: training failed: .*${join(dataDir, 'models', 'fragile-lns').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*; its output is in `));
  });
});
