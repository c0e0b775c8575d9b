import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Completion, FileObject, FineTuningJob, JobCheckpointList, JobEvent, JobEventList, ModelList } from '../src/schemas.js';
import { allEvents, client, COLORS, finished, jsonl, keysFile, makeBaseModel, readSse, startService, tempDir, waitForJob, type Client, type ServiceProcess } from './helpers.js';

let service: ServiceProcess;
let api: Client;
let key: string;
let dataDir: string;

beforeAll(async () => {
  dataDir = tempDir('learn');
  await makeBaseModel(join(dataDir, 'models', 'tiny-lns'));
  key = keysFile(join(dataDir, 'keys.json'), ['acme']).acme!;
  service = await startService(dataDir, { args: ['--keys-file', join(dataDir, 'keys.json')] });
  api = client(service.url, key);
});

afterAll(async () => {
  expect(await service.stop()).toBe(0);
});

const complete = async (model: string, prompt: string) => {
  const r = await api.post('/v1/completions', { model, prompt, max_tokens: 10, temperature: 0 });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return Completion.parse(r.body);
};

describe('fine-tuning end to end', () => {
  it('fine-tunes a tiny base model until it writes the trained completions', async () => {
    const models = ModelList.parse((await api.get('/v1/models')).body);
    expect(models.data).toEqual([expect.objectContaining({ id: 'tiny-lns', owned_by: 'system', context_length: 64 })]);

    const training = FileObject.parse((await api.upload(jsonl(COLORS), 'colors.jsonl')).body);
    expect(training).toMatchObject({ filename: 'colors.jsonl', purpose: 'fine-tune', format: 'prompt_completion', examples: 6, status: 'processed' });
    // The same set again, sent raw, as the validation file: stored once (content-addressed), two ids.
    const raw = await api.call('POST', '/v1/files?purpose=fine-tune&filename=valid.jsonl', { body: jsonl(COLORS), headers: { 'content-type': 'application/jsonl' } });
    const validation = FileObject.parse(raw.body);
    expect(validation.id).not.toBe(training.id);

    const before = await Promise.all(COLORS.map((p) => complete('tiny-lns', p.prompt)));
    expect(before.filter((c, i) => c.choices[0]!.text === COLORS[i]!.completion).length).toBeLessThan(2);

    const created = await api.post('/v1/fine_tuning/jobs', {
      model: 'tiny-lns',
      training_file: training.id,
      validation_file: validation.id,
      hyperparameters: { n_epochs: 40, batch_size: 2, learning_rate: 2e-2, warmup: 3 },
      suffix: 'colors',
      seed: 7,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const job = FineTuningJob.parse(created.body);
    expect(job).toMatchObject({ status: 'validating_files', model: 'tiny-lns', organization_id: 'acme', total_steps: 120, seed: 7, fine_tuned_model: null });
    expect(job.hyperparameters).toEqual({ n_epochs: 40, batch_size: 2, learning_rate: 2e-2, warmup: 3, max_seq_len: 64 });

    // Follow the job live: the stream carries every event and closes when the job is done.
    const stream = await readSse(`${service.url}/v1/fine_tuning/jobs/${job.id}/events?stream=true`, { authorization: `Bearer ${key}` });
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);
    expect(stream.frames.at(-1)!.data).toBe('[DONE]');
    const streamed = stream.frames.slice(0, -1).map((f) => JobEvent.parse(JSON.parse(f.data)));
    expect(stream.frames.slice(0, -1).map((f) => f.id)).toEqual(streamed.map((e) => e.id));

    const done = FineTuningJob.parse((await waitForJob(api, job.id, (j) => j.status !== 'running' && j.status !== 'queued' && j.status !== 'validating_files')));
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(done.fine_tuned_model).toMatch(/^ft:tiny-lns:acme:colors:[A-Za-z0-9]{12}$/);
    expect(done.trained_tokens).toBeGreaterThan(0);
    expect(done.finished_at).toBeGreaterThanOrEqual(done.started_at!);

    // Everything that was streamed is in the event list too (which is newest first).
    const listed = await allEvents(api, job.id);
    expect(JobEventList.parse({ object: 'list', data: listed, has_more: false }).data).toEqual(streamed);
    const steps = streamed.filter((e) => e.type === 'metrics' && e.data!.train_loss !== undefined);
    expect(steps.map((e) => e.data!.step)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    const evals = streamed.filter((e) => e.data?.valid_loss !== undefined).map((e) => e.data as { epoch: number; valid_loss: number; valid_mean_token_accuracy: number });
    expect(evals.map((e) => e.epoch)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(evals.at(-1)!.valid_loss).toBeLessThan(evals[0]!.valid_loss / 10);
    expect(evals.at(-1)!.valid_mean_token_accuracy).toBe(1);
    expect(streamed.at(-1)!.message).toBe(`The job has successfully completed; new model ${done.fine_tuned_model}.`);

    // It learned: every prompt now gets its trained completion, ended by the end-of-sequence token.
    const after1 = await Promise.all(COLORS.map((p) => complete(done.fine_tuned_model!, p.prompt)));
    expect(after1.map((c) => c.choices[0]!.text)).toEqual(COLORS.map((p) => p.completion));
    expect(after1.map((c) => c.choices[0]!.finish_reason)).toEqual(COLORS.map(() => 'stop'));
    expect(after1[0]!.usage.completion_tokens).toBeGreaterThan(0);

    // One checkpoint per epoch, newest first, each usable as a model.
    const checkpoints = JobCheckpointList.parse((await api.get(`/v1/fine_tuning/jobs/${job.id}/checkpoints?limit=100`)).body);
    expect(checkpoints.data.map((c) => c.step_number)).toEqual(Array.from({ length: 40 }, (_, i) => 120 - 3 * i));
    expect(checkpoints.data[0]!.metrics).toMatchObject({ step: 120, epoch: 40, valid_mean_token_accuracy: 1 });
    expect(checkpoints.data.at(-1)!.metrics.valid_loss).toBeGreaterThan(checkpoints.data[0]!.metrics.valid_loss!);
    const early = checkpoints.data.at(-1)!;
    expect(early.fine_tuned_model_checkpoint).toBe(`${done.fine_tuned_model}:ckpt-step-3`);
    expect((await complete(early.fine_tuned_model_checkpoint, 'The sky is')).choices[0]!.text).not.toBe(' blue');

    // The result keeps the base model's config, normalization scheme included.
    const config = (dir: string) => JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(config(join(dataDir, 'jobs', job.id, 'model'))).toEqual(config(join(dataDir, 'models', 'tiny-lns')));
    expect(config(join(dataDir, 'jobs', job.id, 'model')).deepen.norm_scheme).toBe('lns');

    const all = ModelList.parse((await api.get('/v1/models')).body);
    expect(all.data.map((m) => [m.id, m.owned_by])).toEqual([['tiny-lns', 'system'], [done.fine_tuned_model, 'acme']]);
  });

  it('fine-tunes on conversations (loss on replies only) and warns about truncated examples', async () => {
    const chats = COLORS.map((p) => ({ messages: [{ role: 'user', content: p.prompt }, { role: 'assistant', content: p.completion.trim() }] }));
    // One conversation far longer than max_seq_len: it is cut, and the job says which line.
    const long = { messages: [{ role: 'user', content: 'Tell me about the colors of things. '.repeat(3) }, { role: 'assistant', content: 'They vary.' }] };
    const file = (await api.upload(jsonl([...chats, long]), 'chats.jsonl')).body;
    expect(file).toMatchObject({ format: 'chat', examples: 7 });
    const created = await api.post('/v1/fine_tuning/jobs', {
      model: 'tiny-lns',
      training_file: file.id,
      hyperparameters: { n_epochs: 60, batch_size: 2, learning_rate: 2e-2, warmup: 3, max_seq_len: 48 },
      seed: 1,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const done = await waitForJob(api, created.body.id, finished);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const warning = (await allEvents(api, done.id)).find((e: { level: string }) => e.level === 'warn');
    expect(warning.message).toMatch(/^1 of 7 training examples are longer than max_seq_len \(48 tokens\) and were cut at the end; the longest has \d+ tokens \(line 7\)\.$/);
    expect(warning.data).toMatchObject({ truncated: 1, lines: [7] });
    for (const [i, p] of COLORS.entries()) {
      const r = await api.post('/v1/chat/completions', { model: done.fine_tuned_model, messages: chats[i]!.messages.slice(0, 1), max_tokens: 8, temperature: 0 });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.choices[0], p.prompt).toMatchObject({ message: { role: 'assistant', content: p.completion.trim() }, finish_reason: 'stop' });
    }
  });
});
