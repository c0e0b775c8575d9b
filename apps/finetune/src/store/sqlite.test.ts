import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from './sqlite.js';
import { UnknownCursorError, type FileRecord, type JobRecord } from './types.js';

const path = () => join(mkdtempSync(join(tmpdir(), 'deepen-store-')), 'finetune.db');

const file = (id: string, tenant: string, sha256 = 'a'.repeat(64)): FileRecord => ({ id, tenant, filename: 'x.jsonl', purpose: 'fine-tune', bytes: 10, sha256, format: 'prompt_completion', examples: 2, createdAt: 1 });

const job = (id: string, tenant: string, overrides: Partial<JobRecord> = {}): JobRecord => ({
  id,
  tenant,
  model: 'base',
  trainingFile: 'file-1',
  validationFile: null,
  trainingSha256: 'a'.repeat(64),
  validationSha256: null,
  hyperparameters: { n_epochs: 1, batch_size: 1, learning_rate: 1e-3, warmup: 0, max_seq_len: 16 },
  totalSteps: 2,
  suffix: null,
  seed: 0,
  status: 'queued',
  error: null,
  fineTunedModel: `ft:base:${tenant}:${id}`,
  createdAt: 1,
  startedAt: null,
  finishedAt: null,
  trainedTokens: null,
  publish: null,
  workerPid: null,
  ...overrides,
});

describe('SqliteStore', () => {
  it('keeps everything across a reopen', async () => {
    const p = path();
    const a = new SqliteStore(p);
    await a.insertFile(file('file-1', 't1'));
    await a.insertJob(job('ftjob-1', 't1', { error: { code: 'x', message: 'y', param: null } }));
    await a.addEvent({ id: 'ev-1', jobId: 'ftjob-1', createdAt: 2, level: 'info', type: 'metrics', message: 'step', data: { step: 1, train_loss: 0.5 } });
    await a.close();
    const b = new SqliteStore(p);
    expect(await b.getFile('t1', 'file-1')).toEqual(file('file-1', 't1'));
    expect(await b.getJob('t1', 'ftjob-1')).toEqual(job('ftjob-1', 't1', { error: { code: 'x', message: 'y', param: null } }));
    expect((await b.listEvents('ftjob-1', { limit: 10 })).data.map((e) => e.data)).toEqual([{ step: 1, train_loss: 0.5 }]);
    await b.close();
  });

  it('scopes every read and delete to the tenant', async () => {
    const s = new SqliteStore(path());
    await s.insertFile(file('file-1', 't1'));
    await s.insertJob(job('ftjob-1', 't1'));
    expect(await s.getFile('t2', 'file-1')).toBeNull();
    expect(await s.getJob('t2', 'ftjob-1')).toBeNull();
    expect((await s.listFiles('t2', { limit: 10 })).data).toEqual([]);
    expect(await s.deleteFile('t2', 'file-1')).toBe(false);
    expect(await s.getFile('t1', 'file-1')).not.toBeNull();
    await expect(s.listJobs('t2', { limit: 10, after: 'ftjob-1' })).rejects.toBeInstanceOf(UnknownCursorError);
    await s.insertModel({ id: 'ft:base:t1:x', tenant: 't1', jobId: 'ftjob-1', baseModel: 'base', dir: '/m', createdAt: 3 });
    expect(await s.getModel('t2', 'ft:base:t1:x')).toBeNull();
    await s.putCheckpoint({ id: 'c1', jobId: 'ftjob-1', step: 2, createdAt: 3, modelId: 'ft:base:t1:x:ckpt-step-2', dir: '/c', metrics: { step: 2, epoch: 1, train_loss: 1, valid_loss: null, valid_mean_token_accuracy: null } });
    expect(await s.findCheckpointModel('t2', 'ft:base:t1:x:ckpt-step-2')).toBeNull();
    expect((await s.findCheckpointModel('t1', 'ft:base:t1:x:ckpt-step-2'))?.dir).toBe('/c');
    await s.close();
  });

  it('pages newest first with a cursor', async () => {
    const s = new SqliteStore(path());
    for (let i = 1; i <= 5; i++) await s.insertFile(file(`file-${i}`, 't1'));
    const first = await s.listFiles('t1', { limit: 2 });
    expect(first).toEqual({ data: [expect.objectContaining({ id: 'file-5' }), expect.objectContaining({ id: 'file-4' })], hasMore: true });
    const last = await s.listFiles('t1', { limit: 2, after: 'file-2' });
    expect(last).toEqual({ data: [expect.objectContaining({ id: 'file-1' })], hasMore: false });
    await s.close();
  });

  it('changes a job only from the expected status, and claims the oldest queued job once', async () => {
    const s = new SqliteStore(path());
    await s.insertJob(job('ftjob-1', 't1'));
    await s.insertJob(job('ftjob-2', 't1'));
    expect(await s.updateJob('ftjob-1', ['running'], { status: 'failed' })).toBeNull();
    const claimed = await s.claimQueuedJob({ startedAt: 5 });
    expect(claimed).toMatchObject({ id: 'ftjob-1', status: 'running', startedAt: 5 });
    expect((await s.claimQueuedJob({}))?.id).toBe('ftjob-2');
    expect(await s.claimQueuedJob({})).toBeNull();
    expect(await s.updateJob('ftjob-1', ['running'], { status: 'succeeded', trainedTokens: 9 })).toMatchObject({ status: 'succeeded', trainedTokens: 9 });
    expect((await s.jobsWithStatus(['running'])).map((j) => j.id)).toEqual(['ftjob-2']);
    await s.close();
  });

  it('keeps publish targets and finds the succeeded jobs whose upload is still to do', async () => {
    const s = new SqliteStore(path());
    const target = { repo: 'acme/model', private: true, revision: 'main', status: 'pending' as const, url: null, commit: null, error: null, startedAt: null, finishedAt: null };
    await s.insertJob(job('ftjob-1', 't1', { publish: target }));
    await s.insertJob(job('ftjob-2', 't1', { publish: target }));
    await s.insertJob(job('ftjob-3', 't1', { status: 'succeeded' }));
    expect((await s.getJob('t1', 'ftjob-1'))?.publish).toEqual(target);
    expect(await s.jobsAwaitingPublish()).toEqual([]); // not trained yet
    await s.updateJob('ftjob-1', ['queued'], { status: 'succeeded' });
    await s.updateJob('ftjob-2', ['queued'], { status: 'succeeded', publish: { ...target, status: 'published', url: 'https://hub/acme/model', commit: 'abc' } });
    expect((await s.jobsAwaitingPublish()).map((j) => j.id)).toEqual(['ftjob-1']);
    await s.updateJob('ftjob-1', ['succeeded'], { publish: { ...target, status: 'publishing', startedAt: 7 } });
    expect((await s.jobsAwaitingPublish()).map((j) => [j.id, j.publish?.status])).toEqual([['ftjob-1', 'publishing']]);
    await s.close();
  });

  it('records one checkpoint per step (a later report replaces an earlier one)', async () => {
    const s = new SqliteStore(path());
    await s.insertJob(job('ftjob-1', 't1'));
    const metrics = { step: 3, epoch: 1, train_loss: 1, valid_loss: null, valid_mean_token_accuracy: null };
    await s.putCheckpoint({ id: 'c1', jobId: 'ftjob-1', step: 3, createdAt: 1, modelId: 'm:ckpt-step-3', dir: '/a', metrics });
    await s.putCheckpoint({ id: 'c2', jobId: 'ftjob-1', step: 3, createdAt: 2, modelId: 'm:ckpt-step-3', dir: '/b', metrics: { ...metrics, valid_loss: 0.5 } });
    const page = await s.listCheckpoints('ftjob-1', { limit: 10 });
    expect(page.data).toEqual([expect.objectContaining({ id: 'c1', dir: '/b', metrics: { ...metrics, valid_loss: 0.5 } })]);
    await s.close();
  });

  it('records journaled events once per key, each checkpoint with its event, in one go', async () => {
    const s = new SqliteStore(path());
    await s.insertJob(job('ftjob-1', 't1'));
    const metrics = { step: 3, epoch: 1, train_loss: 1, valid_loss: null, valid_mean_token_accuracy: null };
    const entry = (key: string, n: number, step: number | null = null) => ({
      key,
      event: { id: `ev-${n}`, jobId: 'ftjob-1', createdAt: n, level: 'info' as const, type: 'message' as const, message: key, data: null },
      checkpoint: step === null ? null : { id: `c-${n}`, jobId: 'ftjob-1', step, createdAt: n, modelId: `m:ckpt-step-${step}`, dir: `/run/${n}`, metrics },
    });
    expect((await s.addJournaled([entry('step-1', 1), entry('checkpoint-3', 2, 3)])).map((e) => e.id)).toEqual(['ev-1', 'ev-2']);
    await s.addEvent({ id: 'ev-3', jobId: 'ftjob-1', createdAt: 3, level: 'warn', type: 'message', message: 'the service stopped', data: null });
    // A replay: what is recorded already is skipped, a checkpoint with it (its record stays as it was).
    expect((await s.addJournaled([entry('step-1', 4), entry('checkpoint-3', 5, 3), entry('step-4', 6)])).map((e) => e.id)).toEqual(['ev-6']);
    expect((await s.listEvents('ftjob-1', { limit: 10 })).data.map((e) => e.id)).toEqual(['ev-6', 'ev-3', 'ev-2', 'ev-1']);
    expect((await s.listCheckpoints('ftjob-1', { limit: 10 })).data.map((c) => c.dir)).toEqual(['/run/2']);
    // Events without a key are never taken for each other.
    await s.addEvent({ id: 'ev-7', jobId: 'ftjob-1', createdAt: 7, level: 'warn', type: 'message', message: 'the service stopped', data: null });
    expect((await s.listEvents('ftjob-1', { limit: 10 })).data).toHaveLength(5);
    await s.close();
  });

  it('knows which stored content is still needed', async () => {
    const s = new SqliteStore(path());
    const sha = 'b'.repeat(64);
    expect(await s.blobReferenced(sha)).toBe(false);
    await s.insertFile(file('file-1', 't1', sha));
    expect(await s.blobReferenced(sha)).toBe(true);
    await s.deleteFile('t1', 'file-1');
    await s.insertJob(job('ftjob-1', 't1', { trainingSha256: sha, status: 'running' }));
    expect(await s.blobReferenced(sha)).toBe(true);
    await s.updateJob('ftjob-1', ['running'], { status: 'succeeded' });
    expect(await s.blobReferenced(sha)).toBe(false);
    await s.close();
  });

  it('refuses a database written by a newer service', async () => {
    const p = path();
    await new SqliteStore(p).close();
    const db = new Database(p);
    db.pragma('user_version = 99');
    db.close();
    expect(() => new SqliteStore(p)).toThrow(/schema version 99 is newer than this service understands \(3\)/);
  });
});
