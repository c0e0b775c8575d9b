import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@deepen/backend';
import { Tokenizer, trainByteLevelBpe } from '@deepen/data';
import { LlamaModel, makeConfig, saveCheckpoint, type LlamaConfig } from '@deepen/models';

export const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

export const tempDir = (label: string) => mkdtempSync(join(tmpdir(), `deepen-finetune-${label}-`));

/** Six prompt → completion pairs a tiny model can learn in a few seconds. */
export const COLORS = [
  ['The sky is', ' blue'],
  ['Grass is', ' green'],
  ['Snow is', ' white'],
  ['Coal is', ' black'],
  ['The sun is', ' yellow'],
  ['Blood is', ' red'],
].map(([prompt, completion]) => ({ prompt: prompt as string, completion: completion as string }));

export const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

/**
 * A tiny base model made with the real code: a byte-level BPE tokenizer trained on the data
 * and a randomly initialised 2-layer LNS LLaMA, saved as a checkpoint folder.
 */
export async function makeBaseModel(
  dir: string,
  options: { contextLength?: number; family?: Partial<LlamaConfig>; specialTokens?: string[]; files?: Record<string, string> } = {},
): Promise<string> {
  await initBackend({ engine: 'cpu' });
  const tokenizer = Tokenizer.fromJSON(
    trainByteLevelBpe([...COLORS.map((p) => p.prompt + p.completion), 'some other text about colors and things'], { vocabSize: 300, ...(options.specialTokens ? { specialTokens: options.specialTokens } : {}) }),
  );
  const model = LlamaModel.create(
    makeConfig({
      ...options.family,
      vocab_size: tokenizer.vocabSize,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: options.contextLength ?? 64,
      bos_token_id: tokenizer.special.bos,
      eos_token_id: tokenizer.special.eos,
      pad_token_id: tokenizer.special.pad,
      deepen: { norm_scheme: 'lns' },
    }),
    { seed: 0 },
  );
  await saveCheckpoint(model, dir, { files: { 'tokenizer.json': tokenizer.serialize(), ...options.files } });
  model.dispose();
  return dir;
}

export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  /** Everything it printed so far. */
  output: () => string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait until it is gone. */
  kill(): Promise<void>;
}

/** Starts the built service in its own process on a free loopback port. */
export async function startService(dataDir: string, options: { args?: string[]; env?: Record<string, string> } = {}): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [CLI, '--port', '0', '--data-dir', dataDir, '--backend', 'wasm', ...(options.args ?? [])], {
    // Settings from the developer's environment never leak into a test's service. It stops
    // listening at once on SIGTERM (the test of draining sets its own period).
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FINETUNE_'))), DEEPEN_BACKEND: '', FINETUNE_DRAIN_SECONDS: '0', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let stopping = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      if (!stopping) console.error(`the service exited on its own (${signal ?? code}):\n${output}`);
      resolve(code);
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start within 30s:\n${output}`)), 30_000);
    const check = () => {
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] as string);
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with code ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    child,
    output: () => output,
    async stop() {
      stopping = true;
      child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      stopping = true;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

// Test code reads response bodies field by field; the schemas check their shape where it matters.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface Response<T = Json> {
  status: number;
  body: T;
  headers: Headers;
}

/** A small client for one tenant's key. */
export function client(url: string, key: string | null) {
  const auth: Record<string, string> = key === null ? {} : { authorization: `Bearer ${key}` };
  const call = async (method: string, path: string, init: { json?: unknown; body?: RequestInit['body']; headers?: Record<string, string> } = {}): Promise<Response> => {
    const headers = { ...auth, ...(init.json !== undefined ? { 'content-type': 'application/json' } : {}), ...init.headers };
    const res = await fetch(`${url}${path}`, { method, headers, body: init.json !== undefined ? JSON.stringify(init.json) : (init.body ?? null) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body, headers: res.headers };
  };
  return {
    get: (path: string) => call('GET', path),
    post: (path: string, json?: unknown) => call('POST', path, json === undefined ? {} : { json }),
    delete: (path: string) => call('DELETE', path),
    call,
    /** Uploads JSONL text as multipart/form-data. */
    upload: (content: string, filename = 'train.jsonl', purpose = 'fine-tune') => {
      const form = new FormData();
      form.set('purpose', purpose);
      form.set('file', new Blob([content], { type: 'application/jsonl' }), filename);
      return call('POST', '/v1/files', { body: form });
    },
  };
}
export type Client = ReturnType<typeof client>;

/** Polls a job until `done` holds (or fails after `timeoutMs`). */
export async function waitForJob(api: Client, id: string, done: (job: Json) => boolean, timeoutMs = 90_000): Promise<Json> {
  const started = Date.now();
  for (;;) {
    const { body } = await api.get(`/v1/fine_tuning/jobs/${id}`);
    if (done(body)) return body;
    if (Date.now() - started > timeoutMs) throw new Error(`job ${id} did not get there in ${timeoutMs} ms: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** All of a job's events, oldest first. */
export async function allEvents(api: Client, id: string): Promise<Json[]> {
  const events: Json[] = [];
  let after = '';
  for (;;) {
    const page = (await api.get(`/v1/fine_tuning/jobs/${id}/events?limit=100${after}`)).body;
    events.push(...page.data);
    if (!page.has_more) return events.reverse();
    after = `&after=${page.data.at(-1).id}`;
  }
}

export const finished = (job: { status: string }) => ['succeeded', 'failed', 'cancelled'].includes(job.status);

/** Writes a keys file for the given tenants and returns their keys. */
export function keysFile(path: string, tenants: string[]): Record<string, string> {
  const keys = Object.fromEntries(tenants.map((t) => [t, `sk-test-${t}-0123456789abcdef`]));
  writeFileSync(path, JSON.stringify({ keys: Object.entries(keys).map(([tenant, key]) => ({ tenant, key })) }));
  return keys;
}

export interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

/** Reads a Server-Sent Events stream to its end, parsing frames. */
export async function readSse(
  url: string,
  headers: Record<string, string>,
  options: { onFrame?: (frame: SseFrame) => boolean | void; timeoutMs?: number } = {},
): Promise<{ status: number; contentType: string | null; frames: SseFrame[]; stoppedEarly: boolean }> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeoutMs ?? 90_000);
  const frames: SseFrame[] = [];
  let stoppedEarly = false;
  let status = 0;
  let contentType: string | null = null;
  try {
    const res = await fetch(url, { headers, signal: controller.signal });
    status = res.status;
    contentType = res.headers.get('content-type');
    if (!res.ok || !res.body) return { status, contentType, frames, stoppedEarly };
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const frame: SseFrame = { data: '' };
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const at = line.indexOf(': ');
          const [field, value] = at < 0 ? [line, ''] : [line.slice(0, at), line.slice(at + 2)];
          if (field === 'id') frame.id = value;
          else if (field === 'event') frame.event = value;
          else if (field === 'data') frame.data += value;
        }
        if (frame.data === '' && frame.id === undefined) continue;
        frames.push(frame);
        if (options.onFrame?.(frame) === true) {
          stoppedEarly = true;
          controller.abort();
        }
      }
    }
    return { status, contentType, frames, stoppedEarly };
  } catch (error) {
    // Stopping on purpose aborts the request; so does a service that goes away.
    if (stoppedEarly || (!timedOut && (error as Error).name !== 'AbortError')) return { status, contentType, frames, stoppedEarly };
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Follows a job's event stream until `until` holds for an event. */
export async function waitForEvent(url: string, key: string, jobId: string, until: (event: Json) => boolean): Promise<Json> {
  let found: Json = null;
  await readSse(`${url}/v1/fine_tuning/jobs/${jobId}/events?stream=true`, { authorization: `Bearer ${key}` }, {
    onFrame: (frame) => {
      if (frame.data === '[DONE]') return false;
      const event = JSON.parse(frame.data);
      if (!until(event)) return false;
      found = event;
      return true;
    },
  });
  if (found === null) throw new Error(`job ${jobId} ended without the awaited event`);
  return found;
}

/** One HTTP request with Node's client, exactly as given (no path normalisation, chunked bodies). */
export function rawRequest(url: string, options: { method: string; path: string; headers?: Record<string, string>; chunks?: Array<string | Buffer> }): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, method: options.method, path: options.path, headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    for (const chunk of options.chunks ?? []) req.write(chunk);
    req.end();
  });
}
