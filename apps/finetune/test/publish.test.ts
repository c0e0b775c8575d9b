import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The Hub on loopback that @deepen/hub's own tests use (see turbo.json: a test input here too).
import { FakeHub } from '@deepen/hub/testing';
import { FineTuningJob } from '../src/schemas.js';
import { allEvents, client, COLORS, jsonl, makeBaseModel, readSse, startService, tempDir, waitForEvent, waitForJob, type Client, type Json, type ServiceProcess } from './helpers.js';

/** Hugging Face tokens of two Hub users; tenant acme holds the first, tenant gamma the second, tenant beta none. */
const TOKENS = { acme: 'hf_acme_0123456789_do_not_leak', gamma: 'hf_gamma_0123456789_do_not_leak' };
const KEYS = { acme: 'sk-test-acme-0123456789abcdef', gamma: 'sk-test-gamma-0123456789abcdef', beta: 'sk-test-beta-0123456789abcdef' };
const HYPERPARAMETERS = { n_epochs: 2, batch_size: 3 };

let hub: FakeHub;
let dataDir: string;
let args: string[];
/** Every service process of this file, for the checks on what they printed. */
const services: ServiceProcess[] = [];
let api: { acme: Client; gamma: Client; beta: Client };
const trainingFiles: Record<string, string> = {};

const service = () => services.at(-1)!;
const start = async () => {
  services.push(await startService(dataDir, { args }));
  api = { acme: client(service().url, KEYS.acme), gamma: client(service().url, KEYS.gamma), beta: client(service().url, KEYS.beta) };
};
const publishDone = (job: Json) => job.publish !== null && ['published', 'failed', 'skipped'].includes(job.publish.status);
const modelDir = (jobId: string) => join(dataDir, 'jobs', jobId, 'model');
/** The Authorization headers the Hub saw from request `from` on (storage uploads carry none). */
const tokensSeen = (from: number) => new Set(hub.requests.slice(from).map((r) => r.authorization).filter((a) => a !== undefined));

beforeAll(async () => {
  // Parts of 16 KiB: the tiny model's weights go up in several, so upload progress has steps.
  hub = await new FakeHub({ users: { [TOKENS.acme]: { name: 'acme' }, [TOKENS.gamma]: { name: 'gamma' } }, multipartChunk: 16 * 1024 }).start();
  dataDir = tempDir('publish');
  await makeBaseModel(join(dataDir, 'models', 'tiny-lns'));
  // Credentials live outside the data directory, as an operator would keep them.
  const secrets = tempDir('publish-secrets');
  writeFileSync(join(secrets, 'acme.token'), `${TOKENS.acme}\n`, { mode: 0o600 });
  writeFileSync(join(secrets, 'gamma.token'), `${TOKENS.gamma}\n`, { mode: 0o600 });
  const keys = [
    { tenant: 'acme', key: KEYS.acme, hf_token_file: 'acme.token' },
    { tenant: 'gamma', key: KEYS.gamma, hf_token_file: 'gamma.token' },
    { tenant: 'beta', key: KEYS.beta },
  ];
  writeFileSync(join(secrets, 'keys.json'), JSON.stringify({ keys }), { mode: 0o600 });
  args = ['--keys-file', join(secrets, 'keys.json'), '--hub-url', hub.url, '--model-repo', 'tiny-lns=deepen-org/tiny-lns'];
  await start();
  for (const tenant of ['acme', 'gamma'] as const) trainingFiles[tenant] = (await api[tenant].upload(jsonl(COLORS))).body.id;
});

afterAll(async () => {
  await service().stop();
  await hub.close();
});

describe('publishing fine-tuned models to the Hub', () => {
  it("trains, then uploads the fine-tuned model with the tenant's own token: the same bytes, and a card naming the base model", async () => {
    const before = hub.requests.length;
    const created = await api.acme.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFiles.acme, hyperparameters: HYPERPARAMETERS, publish: { repo: 'acme/colors' } });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const job = FineTuningJob.parse(created.body);
    expect(job.publish).toEqual({ repo: 'acme/colors', private: true, revision: 'main', status: 'pending', url: null, commit: null, error: null, finished_at: null });

    // The event stream lasts until the upload is done, not just the training.
    const stream = await readSse(`${service().url}/v1/fine_tuning/jobs/${job.id}/events?stream=true`, { authorization: `Bearer ${KEYS.acme}` });
    expect(stream.frames.at(-1)!.data).toBe('[DONE]');
    expect(JSON.parse(stream.frames.at(-2)!.data).message).toMatch(/^Published to /);

    const done = FineTuningJob.parse((await api.acme.get(`/v1/fine_tuning/jobs/${job.id}`)).body);
    expect(done.status).toBe('succeeded');
    const commit = hub.commits('acme/colors')[0]!;
    expect(done.publish).toMatchObject({ status: 'published', url: `${hub.url}/acme/colors`, commit: commit.oid, error: null });
    expect(commit.title).toBe(`Fine-tune of tiny-lns (${job.id}) with deepen`);
    expect(hub.isPrivate('acme/colors')).toBe(true);

    // Byte for byte what the service keeps as the fine-tuned model (weights through the large-file path).
    const uploaded = hub.files('acme/colors');
    const local = readdirSync(modelDir(job.id));
    expect(local).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));
    for (const name of local) expect(uploaded.get(name), name).toEqual(readFileSync(join(modelDir(job.id), name)));
    expect(hub.lfsFiles('acme/colors')).toEqual(['model.safetensors']);
    const card = uploaded.get('README.md')!.toString();
    expect(card).toMatch(/^---\n[\s\S]*\nbase_model: deepen-org\/tiny-lns\n---\n/);
    expect(card).toMatch(/\ntags:\n- deepen\n- llama\n- norm-lns\n- layernorm-scaling\n- fine-tuned\n/);
    expect(card).toContain(`## Fine-tuning\n\nFine-tuned from \`tiny-lns\` ([deepen-org/tiny-lns](${hub.url}/deepen-org/tiny-lns)) with deepen's fine-tuning service`);
    expect(card).toContain('| examples | 6 (prompt → completion pairs) |');
    expect(card).toContain(`| trained tokens | ${done.trained_tokens!.toLocaleString('en-US')} |`);

    // Acme's token and no other reached the Hub.
    expect(tokensSeen(before)).toEqual(new Set([`Bearer ${TOKENS.acme}`]));

    const messages = (await allEvents(api.acme, job.id)).map((e) => e.message);
    expect(messages).toContain(`Publishing ${done.fine_tuned_model} to acme/colors on ${hub.url}.`);
    expect(messages).toContain(`Published to ${hub.url}/acme/colors (commit ${commit.oid.slice(0, 12)}).`);
    // Progress per file, a quarter at a time, though the weights went up in more parts than that.
    const parts = hub.requests.slice(before).filter((r) => r.path.startsWith('/lfs-part/')).length;
    const progress = messages.filter((m) => /^Upload(ing|ed) model\.safetensors/.test(m));
    expect(parts).toBeGreaterThan(5);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.length).toBeLessThanOrEqual(5);
    expect(progress.at(-1)).toMatch(/^Uploaded model\.safetensors \(\d+\.\d KiB\)\.$/);

    const tried = await api.acme.post('/v1/completions', { model: done.fine_tuned_model, prompt: 'Snow is', max_tokens: 2, temperature: 0 });
    expect(tried.status, JSON.stringify(tried.body)).toBe(200);
  });

  it('leaves the job succeeded and its model usable when the Hub refuses the upload (403), with a clear publish error', async () => {
    const before = hub.requests.length;
    // Gamma may not write to acme's namespace. This Hub also echoes the Authorization header
    // in its error, as a careless proxy might: the job must still not show the token.
    hub.failWith('POST', /^\/api\/repos\/create$/, 403, 1, (req) => `You don't have the rights to create a model under the namespace "acme" (sent: ${req.headers.authorization})`);
    const job = (await api.gamma.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFiles.gamma, hyperparameters: HYPERPARAMETERS, publish: { repo: 'acme/stolen' } })).body;
    const done = FineTuningJob.parse(await waitForJob(api.gamma, job.id, publishDone));
    expect(done.status).toBe('succeeded');
    expect(done.fine_tuned_model).not.toBeNull();
    expect(done.publish).toMatchObject({ repo: 'acme/stolen', status: 'failed', url: null, commit: null, error: { code: 'hub_forbidden' } });
    expect(done.publish!.error!.message).toMatch(/^no write access to acme\/stolen while creating acme\/stolen \(403 Forbidden\): the token from .*gamma\.token\) cannot write to 'acme'/);
    expect(done.publish!.error!.message).toContain('(sent: Bearer hf_***)');
    expect(() => hub.files('acme/stolen')).toThrow(/no repository/);
    expect(tokensSeen(before)).toEqual(new Set([`Bearer ${TOKENS.gamma}`]));

    const failure = (await allEvents(api.gamma, job.id)).at(-1);
    expect(failure).toMatchObject({ level: 'error', message: `Publishing to acme/stolen failed: ${done.publish!.error!.message}`, data: { code: 'hub_forbidden', status: 403 } });
    const tried = await api.gamma.post('/v1/completions', { model: done.fine_tuned_model, prompt: 'Snow is', max_tokens: 2, temperature: 0 });
    expect(tried.status, JSON.stringify(tried.body)).toBe(200);
  });

  it('publishes nothing for a job that does not succeed', async () => {
    const job = (await api.acme.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFiles.acme, publish: { repo: 'acme/never', private: false } })).body;
    const cancelled = await api.acme.post(`/v1/fine_tuning/jobs/${job.id}/cancel`);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', publish: { repo: 'acme/never', private: false, status: 'skipped', url: null } });
    const stream = await readSse(`${service().url}/v1/fine_tuning/jobs/${job.id}/events?stream=true`, { authorization: `Bearer ${KEYS.acme}` }, { timeoutMs: 30_000 });
    expect(stream.frames.at(-1)!.data).toBe('[DONE]');
    expect(() => hub.files('acme/never')).toThrow(/no repository/);
  });

  it('publishes again after the service is killed during an upload', async () => {
    // The Hub is busy: the commit is refused until the faults are cleared, so the upload is
    // still retrying when the service is killed.
    hub.failWith('POST', /^\/api\/models\/acme\/resumed\/commit\//, 503, 100);
    const job = (await api.acme.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: trainingFiles.acme, hyperparameters: HYPERPARAMETERS, publish: { repo: 'acme/resumed', revision: 'tuned' } })).body;
    const retry = await waitForEvent(service().url, KEYS.acme, job.id, (e) => e.message.startsWith('The Hub answered 503'));
    expect(retry.level).toBe('warn');
    expect((await api.acme.get(`/v1/fine_tuning/jobs/${job.id}`)).body.publish.status).toBe('publishing');
    await service().kill();
    hub.clearFaults();

    await start();
    const done = FineTuningJob.parse(await waitForJob(api.acme, job.id, publishDone));
    expect(done.status).toBe('succeeded');
    expect(done.publish).toMatchObject({ status: 'published', revision: 'tuned', url: `${hub.url}/acme/resumed/tree/tuned`, commit: hub.commits('acme/resumed', 'tuned')[0]!.oid });
    const uploaded = hub.files('acme/resumed', 'tuned');
    for (const name of readdirSync(modelDir(job.id))) expect(uploaded.get(name), name).toEqual(readFileSync(join(modelDir(job.id), name)));
    const messages = (await allEvents(api.acme, job.id)).map((e) => e.message);
    expect(messages).toContain('The service stopped while publishing; publishing to acme/resumed again.');
    expect(messages.at(-1)).toMatch(/^Published to /);
  });

  it('never shows a token: not in responses, events, logs, the database or any file of the data directory', async () => {
    const seen: string[] = [];
    for (const tenant of ['acme', 'gamma', 'beta'] as const) {
      const as = api[tenant];
      const jobs = (await as.get('/v1/fine_tuning/jobs?limit=100')).body;
      seen.push(JSON.stringify(jobs), JSON.stringify((await as.get('/v1/models')).body));
      for (const job of jobs.data) {
        seen.push(JSON.stringify((await as.get(`/v1/fine_tuning/jobs/${job.id}`)).body), JSON.stringify(await allEvents(as, job.id)));
        seen.push(JSON.stringify((await readSse(`${service().url}/v1/fine_tuning/jobs/${job.id}/events?stream=true`, { authorization: `Bearer ${KEYS[tenant]}` })).frames));
      }
    }
    seen.push(JSON.stringify((await client(service().url, null).get('/openapi.json')).body));
    expect(seen.join('\n')).toContain('acme/colors'); // the responses are there to look at
    seen.push(...services.map((s) => s.output()));
    const files = (dir: string): string[] => readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? files(join(dir, name)) : [join(dir, name)]));
    const stored = files(dataDir);
    expect(stored.some((f) => f.endsWith('finetune.db'))).toBe(true);
    expect(stored.some((f) => f.endsWith('publish.log'))).toBe(true);
    for (const token of Object.values(TOKENS)) {
      expect(seen.join('\n')).not.toContain(token);
      for (const path of stored) expect(readFileSync(path).includes(token), path).toBe(false);
    }
  });
});
