import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENGINE_ORDER } from '@deepen/backend';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, client, finished, makeBaseModel, startService, tempDir, waitForJob, type ServiceProcess } from './helpers.js';

let base: string;

beforeAll(async () => {
  base = await makeBaseModel(join(tempDir('cli-model'), 'tiny'));
});

/** Runs the CLI to completion (for the cases that exit before listening). */
function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, '--port', '0', ...args], { env: { ...process.env, DEEPEN_BACKEND: '', ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('finetune-service command line', () => {
  it('prints help', () => {
    const r = run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^The deepen fine-tuning service/);
    expect(r.stdout).toMatch(/--concurrency N\s+jobs trained at the same time/);
    // Every engine, native included, in the order auto tries them.
    expect(r.stdout.replace(/\s+/g, ' ')).toContain(`auto, ${ENGINE_ORDER.join(', ')}`);
  });

  const usage: Array<[string[], Record<string, string>, RegExp]> = [
    [['--prot', '1'], {}, /unknown flag --prot/],
    [['--concurrency', '0'], {}, /--concurrency must be at least 1, got 0/],
    [['--backend', 'tpu'], {}, /--backend: unknown engine 'tpu'/],
    [[], { FINETUNE_CONCURRENCY: 'many' }, /FINETUNE_CONCURRENCY must be a number, got 'many'/],
    [[], { DEEPEN_BACKEND: 'tpu' }, /DEEPEN_BACKEND: unknown engine 'tpu'/],
  ];
  for (const [args, env, message] of usage) {
    it(`exits 2 on ${[...args, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)].join(' ')}`, () => {
      const r = run(['--data-dir', tempDir('cli'), ...args], env);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }

  it('exits 1 naming a bad model folder or keys file, and touches nothing', () => {
    const dataDir = tempDir('cli');
    const notAModel = join(dataDir, 'empty');
    mkdirSync(notAModel);
    let r = run(['--data-dir', dataDir, '--model', `x=${notAModel}`], { FINETUNE_API_KEYS: 'a:sk-0123456789abcdef' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/empty: not a checkpoint folder \(no config\.json\) nor a training run with checkpoints\//);
    r = run(['--data-dir', dataDir, '--model', `../x=${base}`]);
    expect(r.stderr).toMatch(/model name '\.\.\/x' must be 1-64 letters/);
    r = run(['--data-dir', dataDir, '--keys-file', join(dataDir, 'nope.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nope\.json: keys file not found/);
    writeFileSync(join(dataDir, 'keys.json'), '{"keys": [{"tenant": "a", "key": "short"}]}');
    r = run(['--data-dir', dataDir, '--keys-file', join(dataDir, 'keys.json')]);
    expect(r.stderr).toMatch(/keys\[0\]: key must be a string of at least 16 characters/);
    expect(readdirSync(dataDir).sort()).toEqual(['empty', 'keys.json']);
  });

  describe('without --data-dir', () => {
    /** Starts the service in an empty working folder, waits until it listens, stops it; returns what it printed. */
    async function startAndStop(cwd: string, env: Record<string, string>): Promise<string> {
      const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FINETUNE_') && k !== 'XDG_DATA_HOME'));
      const child = spawn(process.execPath, [CLI, '--port', '0', '--backend', 'cpu'], { cwd, env: { ...clean, DEEPEN_BACKEND: '', FINETUNE_DRAIN_SECONDS: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      let stopping = false;
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
        if (url === undefined || stopping) return;
        stopping = true;
        // Once it answers a request its signal handlers are in place.
        void fetch(`${url}/openapi.json`).then(() => child.kill('SIGTERM'));
      });
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      expect(await exited, output).toBe(0);
      return output;
    }

    it('keeps its data in $XDG_DATA_HOME/deepen/finetune, else ~/.local/share/deepen/finetune, never in the working folder', async () => {
      const cwd = tempDir('cli-cwd');
      const xdg = tempDir('cli-xdg');
      let output = await startAndStop(cwd, { XDG_DATA_HOME: xdg });
      const fromXdg = join(xdg, 'deepen', 'finetune');
      expect(output).toContain(`data in ${fromXdg}\n`);
      expect(readdirSync(fromXdg)).toEqual(expect.arrayContaining(['api-keys.json', 'finetune.db']));

      const home = tempDir('cli-home');
      // A relative XDG_DATA_HOME is ignored, as the XDG spec says.
      output = await startAndStop(cwd, { HOME: home, XDG_DATA_HOME: 'relative/data' });
      const fromHome = join(home, '.local', 'share', 'deepen', 'finetune');
      expect(output).toContain(`data in ${fromHome}\n`);
      expect(existsSync(join(fromHome, 'api-keys.json'))).toBe(true);
      expect(readdirSync(cwd)).toEqual([]);
      expect(run(['--help']).stdout).toMatch(/--data-dir DIR .*\(default \$XDG_DATA_HOME\/deepen\/finetune, else ~\/\.local\/share\/deepen\/finetune\); env FINETUNE_DATA_DIR/);
    });
  });

  describe('a first start without keys', () => {
    let service: ServiceProcess;
    let dataDir: string;
    beforeAll(async () => {
      dataDir = tempDir('cli-first');
      mkdirSync(join(dataDir, 'models', 'broken'), { recursive: true });
      service = await startService(dataDir, { args: ['--model', `tiny=${base}`] });
    });
    afterAll(async () => {
      expect(await service.stop()).toBe(0);
    });

    it('creates a private keys file with one working key and says where', async () => {
      const path = join(dataDir, 'api-keys.json');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const { keys } = JSON.parse(readFileSync(path, 'utf8'));
      expect(service.output()).toContain(`created ${path} with a key for tenant 'default':\n  ${keys[0].key}\n`);
      expect(service.output()).toMatch(/warning: models: skipping .*broken: not a checkpoint folder/);
      const models = await client(service.url, keys[0].key).get('/v1/models');
      expect(models.body.data.map((m: { id: string }) => m.id)).toEqual(['tiny']);
    });
  });

  it('drains on SIGTERM: readiness answers 503 while other requests still complete, then it exits', async () => {
    const key = 'sk-drain-0123456789abcdef';
    const dataDir = tempDir('cli-drain');
    const service = await startService(dataDir, { args: ['--model', `tiny=${base}`], env: { FINETUNE_API_KEYS: `me:${key}`, FINETUNE_DRAIN_SECONDS: '2' } });
    const api = client(service.url, key);
    expect((await api.get('/readyz')).status).toBe(200);
    const stopped = Date.now();
    const exited = service.stop();
    let ready = await api.get('/readyz');
    for (let i = 0; i < 50 && ready.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 20));
      ready = await api.get('/readyz');
    }
    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({ status: 'not_ready', checks: { database: true, accepting: false } });
    // A load balancer takes the instance out; requests that still come in are answered, and
    // what they create is kept.
    const models = await api.get('/v1/models');
    expect(models.status).toBe(200);
    expect(models.body.data.map((m: { id: string }) => m.id)).toEqual(['tiny']);
    expect(models.headers.get('connection')).toBe('close');
    const file = await api.upload('{"prompt": "The sky is", "completion": " blue"}\n{"prompt": "Snow is", "completion": " white"}\n');
    expect(file.status, JSON.stringify(file.body)).toBe(200);
    const job = await api.post('/v1/fine_tuning/jobs', { model: 'tiny', training_file: file.body.id, hyperparameters: { n_epochs: 1 } });
    expect(job.status, JSON.stringify(job.body)).toBe(200);
    expect((await api.get('/readyz')).status).toBe(503);
    expect(await exited).toBe(0);
    expect(Date.now() - stopped).toBeGreaterThanOrEqual(2000);
    expect(service.output()).toMatch(/SIGTERM: stopping: readiness answers 503 for 2s while requests still complete/);

    const again = await startService(dataDir, { args: ['--model', `tiny=${base}`], env: { FINETUNE_API_KEYS: `me:${key}` } });
    const after = client(again.url, key);
    expect((await after.get(`/v1/files/${file.body.id}`)).status).toBe(200);
    expect((await waitForJob(after, job.body.id, finished)).status).toBe('succeeded');
    expect(await again.stop()).toBe(0);
  });
});
