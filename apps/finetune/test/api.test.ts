import { readdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorResponse } from '../src/schemas.js';
import { client, COLORS, finished, jsonl, keysFile, makeBaseModel, rawRequest, startService, tempDir, waitForJob, type Client, type Json, type ServiceProcess } from './helpers.js';

let dataDir: string;
let service: ServiceProcess;
let keys: Record<string, string>;
let acme: Client;
let globex: Client;
/** Acme's finished job, file and fine-tuned model, for the tenant checks. */
let file: Json;
let job: Json;

beforeAll(async () => {
  dataDir = tempDir('api');
  await makeBaseModel(join(dataDir, 'models', 'tiny-lns'));
  keys = keysFile(join(dataDir, 'keys.json'), ['acme', 'globex']);
  // Small limits so that the size checks are cheap to exercise: 10 KiB JSON bodies, 50 KiB files.
  service = await startService(dataDir, { args: ['--keys-file', join(dataDir, 'keys.json'), '--max-body-mib', String(10 / 1024), '--max-upload-mib', String(50 / 1024)] });
  acme = client(service.url, keys.acme!);
  globex = client(service.url, keys.globex!);
  file = (await acme.upload(jsonl(COLORS))).body;
  job = (await acme.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: file.id, hyperparameters: { n_epochs: 2, batch_size: 3 } })).body;
  job = await waitForJob(acme, job.id, finished);
  expect(job.status).toBe('succeeded');
});

afterAll(async () => {
  await service.stop();
});

/** Checks an error response: status, the OpenAI-style body, and the field it names. */
function expectError(r: { status: number; body: Json }, status: number, expected: { param?: string | null; code?: string; message?: RegExp }) {
  expect(r.status, JSON.stringify(r.body)).toBe(status);
  const { error } = ErrorResponse.parse(r.body);
  if (expected.param !== undefined) expect(error.param).toBe(expected.param);
  if (expected.code !== undefined) expect(error.code).toBe(expected.code);
  if (expected.message !== undefined) expect(error.message).toMatch(expected.message);
}

const createJob = (body: Record<string, unknown>, as: Client = acme) => as.post('/v1/fine_tuning/jobs', { model: 'tiny-lns', training_file: file.id, ...body });

describe('authentication and routing', () => {
  it('asks for a bearer key and refuses a wrong one', async () => {
    const missing = await client(service.url, null).get('/v1/files');
    expectError(missing, 401, { code: 'missing_api_key' });
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expectError(await client(service.url, 'sk-not-a-key-of-anyone').get('/v1/files'), 401, { code: 'invalid_api_key' });
    expectError(await client(service.url, null).call('GET', '/v1/files', { headers: { authorization: `Basic ${keys.acme}` } }), 401, { code: 'invalid_api_key' });
  });

  it('answers health, readiness and the OpenAPI document without a key', async () => {
    const anonymous = client(service.url, null);
    expect((await anonymous.get('/healthz')).body).toEqual({ status: 'ok' });
    const ready = await anonymous.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { database: true, accepting: true } });
    expect(ready.headers.get('x-request-id')).toMatch(/^req_[A-Za-z0-9]{24}$/);
  });

  it('names unknown routes and methods', async () => {
    expectError(await acme.get('/v1/nothing'), 404, { code: 'unknown_route', message: /GET \/v1\/nothing/ });
    const wrongMethod = await acme.call('PUT', '/v1/files');
    expectError(wrongMethod, 405, { code: 'method_not_allowed' });
    expect(wrongMethod.headers.get('allow')).toBe('POST, GET');
  });
});

describe('request bodies and query parameters', () => {
  it('rejects bodies that are not JSON objects', async () => {
    expectError(await acme.call('POST', '/v1/fine_tuning/jobs', { body: '{"model": "tiny-lns",', headers: { 'content-type': 'application/json' } }), 400, { code: 'invalid_json', param: null, message: /not valid JSON/ });
    expectError(await acme.call('POST', '/v1/fine_tuning/jobs', { body: 'model=tiny', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, { code: 'unsupported_media_type' });
    expectError(await acme.post('/v1/fine_tuning/jobs', [1, 2]), 400, { param: null, message: /expected object, received array/ });
    expectError(await acme.call('POST', '/v1/fine_tuning/jobs', { body: '', headers: { 'content-type': 'application/json' } }), 400, { code: 'invalid_json' });
  });

  it('limits the size of JSON bodies', async () => {
    expectError(await acme.post('/v1/completions', { model: 'tiny-lns', prompt: 'x'.repeat(20_000) }), 413, { code: 'request_too_large', message: /10240-byte limit/ });
    // Without a Content-Length the limit holds while reading.
    const chunked = await rawRequest(service.url, {
      method: 'POST',
      path: '/v1/completions',
      headers: { authorization: `Bearer ${keys.acme}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks: ['{"model": "tiny-lns", "prompt": "', 'y'.repeat(8000), 'y'.repeat(8000), '"}'],
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).error.code).toBe('request_too_large');
  });

  const jobCases: Array<[string, Record<string, unknown>, number, string | null, string, RegExp?]> = [
    ['an unknown field', { integrations: [] }, 400, 'integrations', 'unknown_parameter', /Unknown parameter 'integrations'/],
    ['an unknown field of the publish target', { publish: { repo: 'acme/model', token: 'hf_mine' } }, 400, 'publish.token', 'unknown_parameter', /Unknown parameter 'publish.token'/],
    ['a publish target without a repository', { publish: { private: true } }, 400, 'publish.repo', 'missing_required_parameter'],
    ['a repository id without an owner', { publish: { repo: 'model' } }, 400, 'publish.repo', 'invalid_value', /'model' is not a repository id: expected owner\/name/],
    ['a repository id the Hub refuses', { publish: { repo: 'acme/my--model' } }, 400, 'publish.repo', 'invalid_value', /must be 1-96 letters/],
    ['a revision that is no branch name', { publish: { repo: 'acme/model', revision: '../main' } }, 400, 'publish.revision', 'invalid_value', /must be a branch name/],
    ['visibility as a string', { publish: { repo: 'acme/model', private: 'yes' } }, 400, 'publish.private', 'invalid_type'],
    [
      'a publish target from a tenant without a Hugging Face token',
      { publish: { repo: 'acme/model' } },
      400,
      'publish',
      'hub_token_missing',
      /tenant 'acme' has no Hugging Face token on this service/,
    ],
    ['an unknown hyperparameter', { hyperparameters: { lr: 0.1 } }, 400, 'hyperparameters.lr', 'unknown_parameter'],
    ['a missing model', { model: undefined }, 400, 'model', 'missing_required_parameter', /Missing required parameter 'model'/],
    ['a model of the wrong type', { model: 7 }, 400, 'model', 'invalid_type', /expected string, received number/],
    ['zero epochs', { hyperparameters: { n_epochs: 0 } }, 400, 'hyperparameters.n_epochs', 'invalid_value'],
    ['epochs as words', { hyperparameters: { n_epochs: 'three' } }, 400, 'hyperparameters.n_epochs', 'invalid_value'],
    ['fractional epochs', { hyperparameters: { n_epochs: 1.5 } }, 400, 'hyperparameters.n_epochs', 'invalid_value'],
    ['a negative learning rate', { hyperparameters: { learning_rate: -1 } }, 400, 'hyperparameters.learning_rate', 'invalid_value'],
    ['a batch larger than the file', { hyperparameters: { batch_size: 100 } }, 400, 'hyperparameters.batch_size', 'invalid_value', /larger than the training file's 6 examples/],
    ['sequences beyond the context', { hyperparameters: { max_seq_len: 1000 } }, 400, 'hyperparameters.max_seq_len', 'invalid_value', /context of 64 tokens/],
    ['more warmup than steps', { hyperparameters: { warmup: 1000 } }, 400, 'hyperparameters.warmup', 'invalid_value'],
    ['an unknown model', { model: 'llama-70b' }, 400, 'model', 'model_not_found'],
    ['a model name that walks out of the models folder', { model: '../../../etc/passwd' }, 400, 'model', 'model_not_found'],
    ['a missing training file', { training_file: 'file-AAAAAAAAAAAAAAAAAAAAAAAA' }, 400, 'training_file', 'file_not_found'],
    ['a training file id that walks out of the files folder', { training_file: '../finetune.db' }, 400, 'training_file', 'file_not_found'],
    ['a bad suffix', { suffix: 'my model!' }, 400, 'suffix', 'invalid_value'],
    ['a negative seed', { seed: -1 }, 400, 'seed', 'invalid_value'],
    ['a validation file of the wrong type', { validation_file: 12 }, 400, 'validation_file', 'invalid_type'],
  ];
  for (const [label, body, status, param, code, message] of jobCases) {
    it(`job creation refuses ${label}, naming the field`, async () => {
      expectError(await createJob(body), status, { param, code, ...(message ? { message } : {}) });
    });
  }

  it('checks query parameters strictly', async () => {
    expectError(await acme.get('/v1/fine_tuning/jobs?limit=0'), 400, { param: 'limit', code: 'invalid_value' });
    expectError(await acme.get('/v1/fine_tuning/jobs?limit=abc'), 400, { param: 'limit' });
    expectError(await acme.get('/v1/fine_tuning/jobs?limit=101'), 400, { param: 'limit' });
    expectError(await acme.get('/v1/fine_tuning/jobs?limit=1&limit=2'), 400, { param: 'limit', message: /more than once/ });
    expectError(await acme.get('/v1/fine_tuning/jobs?order=asc'), 400, { param: 'order', code: 'unknown_parameter', message: /Unknown query parameter 'order'/ });
    expectError(await acme.get('/v1/fine_tuning/jobs?after=ftjob-nope'), 400, { param: 'after' });
    expectError(await acme.get(`/v1/fine_tuning/jobs/${job.id}/events?stream=yes`), 400, { param: 'stream' });
    expectError(await acme.call('GET', `/v1/fine_tuning/jobs/${job.id}/events?stream=true`, { headers: { 'last-event-id': 'ftevent-unknown' } }), 400, { param: 'Last-Event-ID' });
  });

  it('pages lists with after and limit, newest first', async () => {
    const second = (await acme.upload(jsonl(COLORS.slice(0, 3)), 'second.jsonl')).body;
    const third = (await acme.upload(jsonl(COLORS.slice(0, 2)), 'third.jsonl')).body;
    const first = await acme.get('/v1/files?limit=2');
    expect(first.body.data.map((f: Json) => f.id)).toEqual([third.id, second.id]);
    expect(first.body.has_more).toBe(true);
    const next = await acme.get(`/v1/files?limit=2&after=${second.id}`);
    expect(next.body.data.map((f: Json) => f.id)).toEqual([file.id]);
    expect(next.body.has_more).toBe(false);
    for (const f of [second, third]) expect((await acme.delete(`/v1/files/${f.id}`)).body).toEqual({ id: f.id, object: 'file', deleted: true });
  });
});

describe('uploads', () => {
  const badFiles: Array<[string, string, RegExp]> = [
    ['a line that is not JSON', `${jsonl(COLORS.slice(0, 2))}{"prompt": "x", "completion"\n`, /line 3: not valid JSON/],
    ['a missing completion', jsonl([COLORS[0], { prompt: 'Fire is' }]), /line 2: 'completion' must be a non-empty string/],
    ['a misspelt field', jsonl([{ promt: 'The sky is', completion: ' blue' }]), /line 1: unknown field 'promt' \(allowed: prompt, completion\)/],
    ['mixed formats', jsonl([COLORS[0], { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }]), /line 2: this line is a conversation \(messages\) but line 1 is a prompt\/completion pair/],
    ['an unknown role', jsonl([{ messages: [{ role: 'user', content: 'hi' }, { role: 'bot', content: 'hello' }] }]), /line 1: messages\[1\]\.role must be one of system, user, assistant, got 'bot'/],
    ['a conversation without a reply', jsonl([{ messages: [{ role: 'user', content: 'hi' }] }]), /line 1: the conversation has no assistant message with content/],
    ['a line that is an array', '[1, 2]\n', /line 1: expected a JSON object, got an array/],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"prompt": "caf'), Buffer.from([0xe9]), Buffer.from('", "completion": " x"}\n')]).toString('latin1'), /line 1: not valid UTF-8/],
    ['no examples', '\n\n', /the file holds no examples/],
  ];
  for (const [label, content, message] of badFiles) {
    it(`refuses ${label}, naming the line`, async () => {
      const body = label === 'invalid UTF-8' ? Buffer.from(content, 'latin1') : content;
      const r = await acme.call('POST', '/v1/files?purpose=fine-tune', { body, headers: { 'content-type': 'application/jsonl' } });
      expectError(r, 400, { param: 'file', code: 'invalid_file_format', message });
    });
  }

  it('needs purpose fine-tune and no other form fields', async () => {
    expectError(await acme.upload(jsonl(COLORS), 'x.jsonl', 'assistants'), 400, { param: 'purpose', message: /expected "fine-tune"/ });
    expectError(await acme.call('POST', '/v1/files', { body: jsonl(COLORS), headers: { 'content-type': 'application/jsonl' } }), 400, { param: 'purpose', code: 'missing_required_parameter' });
    const form = new FormData();
    form.set('purpose', 'fine-tune');
    form.set('note', 'hello');
    form.set('file', new Blob([jsonl(COLORS)]), 'x.jsonl');
    expectError(await acme.call('POST', '/v1/files', { body: form }), 400, { param: 'note', code: 'unknown_parameter' });
    const noFile = new FormData();
    noFile.set('purpose', 'fine-tune');
    expectError(await acme.call('POST', '/v1/files', { body: noFile }), 400, { param: 'file', code: 'missing_required_parameter' });
    expectError(await acme.call('POST', '/v1/files', { body: '<xml/>', headers: { 'content-type': 'application/xml' } }), 415, { code: 'unsupported_media_type' });
  });

  it('limits the size of files, with or without a Content-Length', async () => {
    const big = jsonl(Array.from({ length: 1500 }, (_, i) => ({ prompt: `Example ${i} is`, completion: ' fine' })));
    expect(big.length).toBeGreaterThan(50 * 1024);
    expectError(await acme.upload(big), 413, { param: 'file', code: 'file_too_large', message: /51200-byte upload limit/ });
    const chunked = await rawRequest(service.url, {
      method: 'POST',
      path: '/v1/files?purpose=fine-tune',
      headers: { authorization: `Bearer ${keys.acme}`, 'content-type': 'application/jsonl', 'transfer-encoding': 'chunked' },
      chunks: [big.slice(0, 30_000), big.slice(30_000)],
    });
    expect(chunked.status).toBe(413);
    // Nothing of the refused uploads was kept.
    expect((await acme.get('/v1/files')).body.data.map((f: Json) => f.id)).toEqual([file.id]);
    expect(readdirSync(join(dataDir, 'files', 'incoming'))).toEqual([]);
  });

  it('forgets an upload the client abandons halfway', async () => {
    const { hostname, port } = new URL(service.url);
    const req = request({ hostname, port, method: 'POST', path: '/v1/files?purpose=fine-tune', headers: { authorization: `Bearer ${keys.acme}`, 'content-type': 'application/jsonl', 'content-length': '20000' } });
    req.on('error', () => {});
    req.write(jsonl(COLORS));
    await new Promise((r) => setTimeout(r, 300));
    req.destroy();
    for (let i = 0; i < 40 && readdirSync(join(dataDir, 'files', 'incoming')).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(join(dataDir, 'files', 'incoming'))).toEqual([]);
    expect((await acme.get('/v1/files')).body.data.map((f: Json) => f.id)).toEqual([file.id]);
  });

  it('returns the content as uploaded and keeps a file that a job still uses', async () => {
    const content = await acme.call('GET', `/v1/files/${file.id}/content`);
    expect(content.status).toBe(200);
    expect(content.body).toBe(jsonl(COLORS));
    const named = (await acme.upload(jsonl(COLORS), 'données ß.jsonl')).body;
    expect(named.filename).toBe('données ß.jsonl');
    const download = await acme.call('GET', `/v1/files/${named.id}/content`);
    expect(download.headers.get('content-disposition')).toBe("attachment; filename=\"donn_es _.jsonl\"; filename*=UTF-8''donn%C3%A9es%20%C3%9F.jsonl");
    expect((await acme.delete(`/v1/files/${named.id}`)).status).toBe(200);
    const other = (await acme.upload(jsonl(COLORS.slice(0, 4)), 'queued.jsonl')).body;
    const waiting = (await createJob({ training_file: other.id, hyperparameters: { n_epochs: 100, batch_size: 1 } })).body;
    expectError(await acme.delete(`/v1/files/${other.id}`), 409, { code: 'file_in_use' });
    expect((await acme.post(`/v1/fine_tuning/jobs/${waiting.id}/cancel`)).body.status).toBe('cancelled');
    expect((await acme.delete(`/v1/files/${other.id}`)).status).toBe(200);
  });
});

describe('paths', () => {
  it('never resolves ids or model names that walk out of their folders', async () => {
    expectError(await acme.get('/v1/files/..%2F..%2Fetc%2Fpasswd'), 404, { code: 'file_not_found' });
    expectError(await acme.get('/v1/files/..%2Ffinetune.db/content'), 404, { code: 'file_not_found' });
    expectError(await acme.get('/v1/fine_tuning/jobs/..%2F..%2Fetc'), 404, { code: 'job_not_found' });
    expectError(await acme.get('/v1/models/..%2F..%2Fetc%2Fpasswd'), 404, { code: 'model_not_found' });
    expectError(await acme.post('/v1/completions', { model: '../../models/tiny-lns', prompt: 'The sky is' }), 404, { code: 'model_not_found', param: 'model' });
    for (const path of ['/v1/files/../../etc/passwd', '/v1/files/./x', `/v1/files/${file.id}/../../models`]) {
      const r = await rawRequest(service.url, { method: 'GET', path, headers: { authorization: `Bearer ${keys.acme}` } });
      expect(r.status, path).toBe(404);
      expect(JSON.parse(r.body).error.code).toBe('unknown_route');
    }
  });
});

describe('completions', () => {
  it('generates from a base model and checks its limits', async () => {
    const ok = await acme.post('/v1/completions', { model: 'tiny-lns', prompt: 'The sky is', max_tokens: 3, temperature: 0.7, seed: 1 });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ object: 'text_completion', model: 'tiny-lns', usage: { prompt_tokens: expect.any(Number) } });
    const again = await acme.post('/v1/completions', { model: 'tiny-lns', prompt: 'The sky is', max_tokens: 3, temperature: 0.7, seed: 1 });
    expect(again.body.choices).toEqual(ok.body.choices); // a seed makes sampling repeatable
    expectError(await acme.post('/v1/completions', { model: 'tiny-lns', prompt: 'The sky is', max_tokens: 100 }), 400, { param: 'max_tokens', code: 'context_length_exceeded', message: /context is 64 tokens/ });
    expectError(await acme.post('/v1/completions', { model: 'tiny-lns', prompt: 'The sky is '.repeat(40) }), 400, { param: 'prompt', code: 'context_length_exceeded' });
    expectError(await acme.post('/v1/completions', { model: 'tiny-lns', prompt: 'x', stream: true }), 400, { param: 'stream', message: /streaming is not supported/ });
    expectError(await acme.post('/v1/completions', { model: 'tiny-lns', prompt: 'x', temperature: 5 }), 400, { param: 'temperature' });
    expectError(await acme.post('/v1/completions', { model: 'tiny-lns', prompt: 'x', n: 2 }), 400, { param: 'n', code: 'unknown_parameter' });
    const chat = await acme.post('/v1/chat/completions', { model: 'tiny-lns', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
    expect(chat.status).toBe(200);
    expect(chat.body.choices[0].message.role).toBe('assistant');
    expectError(await acme.post('/v1/chat/completions', { model: 'tiny-lns', messages: [{ role: 'robot', content: 'Hi' }] }), 400, { param: 'messages[0].role' });
  });
});

describe('tenants', () => {
  it("never show one tenant's files, jobs or models to another (404, not 403)", async () => {
    const model = job.fine_tuned_model as string;
    expect(model).toMatch(/^ft:tiny-lns:acme:/);
    const checkpoint = (await acme.get(`/v1/fine_tuning/jobs/${job.id}/checkpoints`)).body.data[0].fine_tuned_model_checkpoint;
    expect((await acme.post('/v1/completions', { model: checkpoint, prompt: 'x', max_tokens: 1 })).status).toBe(200);

    expect((await globex.get('/v1/files')).body.data).toEqual([]);
    expect((await globex.get('/v1/fine_tuning/jobs')).body.data).toEqual([]);
    expect((await globex.get('/v1/models')).body.data.map((m: Json) => m.id)).toEqual(['tiny-lns']);
    expect((await acme.get('/v1/models')).body.data.map((m: Json) => m.id)).toEqual(['tiny-lns', model]);

    expectError(await globex.get(`/v1/files/${file.id}`), 404, { code: 'file_not_found' });
    expectError(await globex.get(`/v1/files/${file.id}/content`), 404, { code: 'file_not_found' });
    expectError(await globex.delete(`/v1/files/${file.id}`), 404, { code: 'file_not_found' });
    expectError(await globex.get(`/v1/fine_tuning/jobs/${job.id}`), 404, { code: 'job_not_found' });
    expectError(await globex.get(`/v1/fine_tuning/jobs/${job.id}/events`), 404, { code: 'job_not_found' });
    expectError(await globex.get(`/v1/fine_tuning/jobs/${job.id}/events?stream=true`), 404, { code: 'job_not_found' });
    expectError(await globex.get(`/v1/fine_tuning/jobs/${job.id}/checkpoints`), 404, { code: 'job_not_found' });
    expectError(await globex.post(`/v1/fine_tuning/jobs/${job.id}/cancel`), 404, { code: 'job_not_found' });
    expectError(await globex.get(`/v1/models/${encodeURIComponent(model)}`), 404, { code: 'model_not_found' });
    expectError(await globex.post('/v1/completions', { model, prompt: 'x' }), 404, { code: 'model_not_found', param: 'model' });
    expectError(await globex.post('/v1/completions', { model: checkpoint, prompt: 'x' }), 404, { code: 'model_not_found' });
    expectError(await createJob({}, globex), 400, { param: 'training_file', code: 'file_not_found' });
    expectError(await globex.get(`/v1/fine_tuning/jobs?after=${job.id}`), 400, { param: 'after' });

    // The answers for someone else's ids read exactly like those for ids that never existed.
    const never = await globex.get('/v1/files/file-AAAAAAAAAAAAAAAAAAAAAAAA');
    const theirs = await globex.get(`/v1/files/${file.id}`);
    expect(theirs.body.error.message.replace(file.id, 'ID')).toBe(never.body.error.message.replace('file-AAAAAAAAAAAAAAAAAAAAAAAA', 'ID'));
    // And acme still has everything.
    expect((await acme.get(`/v1/files/${file.id}`)).status).toBe(200);
    expect((await acme.get(`/v1/models/${encodeURIComponent(model)}`)).body).toMatchObject({ id: model, owned_by: 'acme', context_length: 64 });
  });
});

describe('OpenAPI document', () => {
  it('documents every route, generated from the schemas that validate requests', async () => {
    const doc = (await client(service.url, null).get('/openapi.json')).body;
    expect(doc.openapi).toBe('3.1.0');
    const operations = Object.entries(doc.paths as Record<string, Record<string, Json>>).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`));
    expect(operations.sort()).toEqual(
      [
        'GET /healthz',
        'GET /readyz',
        'GET /openapi.json',
        'POST /v1/files',
        'GET /v1/files',
        'GET /v1/files/{file_id}',
        'GET /v1/files/{file_id}/content',
        'DELETE /v1/files/{file_id}',
        'POST /v1/fine_tuning/jobs',
        'GET /v1/fine_tuning/jobs',
        'GET /v1/fine_tuning/jobs/{fine_tuning_job_id}',
        'POST /v1/fine_tuning/jobs/{fine_tuning_job_id}/cancel',
        'GET /v1/fine_tuning/jobs/{fine_tuning_job_id}/events',
        'GET /v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints',
        'GET /v1/models',
        'GET /v1/models/{model}',
        'POST /v1/completions',
        'POST /v1/chat/completions',
      ].sort(),
    );
    const create = doc.components.schemas.CreateFineTuningJobRequest;
    expect(create.additionalProperties).toBe(false);
    expect(create.required).toEqual(['model', 'training_file']);
    expect(create.properties.publish).toEqual({ $ref: '#/components/schemas/PublishTarget' });
    expect(doc.components.schemas.PublishTarget).toMatchObject({ additionalProperties: false, required: ['repo'] });
    expect(Object.keys(doc.components.schemas.PublishTarget.properties)).toEqual(['repo', 'private', 'revision']);
    expect(doc.components.schemas.FineTuningJob.properties.publish.anyOf).toContainEqual({ $ref: '#/components/schemas/PublishResult' });
    expect(doc.components.schemas.PublishResult.properties.status.enum).toEqual(['pending', 'publishing', 'published', 'failed', 'skipped']);
    expect(Object.keys(doc.components.schemas.Hyperparameters.properties)).toEqual(['n_epochs', 'batch_size', 'learning_rate', 'warmup', 'max_seq_len']);
    expect(doc.paths['/v1/fine_tuning/jobs'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/CreateFineTuningJobRequest' });
    expect(doc.paths['/v1/fine_tuning/jobs'].get.parameters.map((p: Json) => p.name)).toEqual(['after', 'limit']);
    // Readiness declares the 503 it answers while the service drains; the document itself is JSON.
    const readiness = doc.paths['/readyz'].get.responses;
    expect(Object.keys(readiness)).toEqual(['200', '503']);
    expect(readiness['503'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/Readiness' });
    expect(doc.components.schemas.Readiness.properties.status.enum).toEqual(['ready', 'not_ready']);
    expect(doc.paths['/openapi.json'].get.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/OpenApiDocument' });
    expect(doc.components.schemas.OpenApiDocument).toMatchObject({ type: 'object', required: ['openapi', 'info', 'paths', 'components'] });
    // Conflicts say whether to retry them, as the OpenAI SDKs read it.
    expect(doc.paths['/v1/files/{file_id}'].delete.responses['409'].headers['x-should-retry']).toMatchObject({ required: true, schema: { enum: ['false', 'true'] } });
    // Every documented operation exists: without a key it is a 401 (or answers), never an unknown route.
    for (const operation of operations) {
      const [method, path] = operation.split(' ') as [string, string];
      const r = await client(service.url, null).call(method, path.replace(/\{\w+\}/g, 'x'));
      expect(r.status, operation).not.toBe(404);
    }
  });
});

describe('the official OpenAI SDK', () => {
  /** How many requests the access log has for this method and path (waiting a little for lines still on their way). */
  const served = async (method: string, path: string) => {
    await new Promise((r) => setTimeout(r, 300));
    return service.output().split('\n').filter((line) => line.startsWith(`${method} ${path} `)).length;
  };

  it('takes a conflict (409) as final: no retries of a cancel of a finished job or a delete of a file in use', async () => {
    const sdk = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: keys.acme!, maxRetries: 2 });
    const cancel = `/v1/fine_tuning/jobs/${job.id}/cancel`;
    const cancelsBefore = await served('POST', cancel);
    await expect(sdk.fineTuning.jobs.cancel(job.id)).rejects.toMatchObject({ status: 409, code: 'job_not_cancellable', type: 'conflict_error' });
    expect(await served('POST', cancel)).toBe(cancelsBefore + 1);

    const inUse = (await acme.upload(jsonl(COLORS.slice(1)), 'in-use.jsonl')).body;
    const running = (await createJob({ training_file: inUse.id, hyperparameters: { n_epochs: 100, batch_size: 1 } })).body;
    await expect(sdk.files.delete(inUse.id)).rejects.toMatchObject({ status: 409, code: 'file_in_use' });
    expect(await served('DELETE', `/v1/files/${inUse.id}`)).toBe(1);
    const answer = await acme.delete(`/v1/files/${inUse.id}`);
    expectError(answer, 409, { code: 'file_in_use' });
    expect(answer.headers.get('x-should-retry')).toBe('false');

    expect((await sdk.fineTuning.jobs.cancel(running.id)).status).toBe('cancelled');
    expect((await sdk.files.delete(inUse.id)).deleted).toBe(true);
  });
});
