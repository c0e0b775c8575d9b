#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BACKEND_ENV_VAR, ENGINE_ORDER, parseEngineRequest } from '@deepen/backend';
import { helpText, parseFlags, UsageError, type FlagSpec, type FlagValues } from '@deepen/core';
import { DEFAULT_HUB_URL, hubUrlFrom } from '@deepen/hub';
import { ApiKeys, createKeysFile, HubTokens, parseKeysVariable, readKeysFile, type KeyEntry } from './keys.js';
import { discoverBaseModels, withHubRepos } from './models.js';
import { dataPaths, defaultDataDir, startService } from './service.js';

const MiB = 1024 * 1024;

/** Flags, each with the environment variable that sets it when the flag is absent. */
const FLAGS: Record<string, FlagSpec & { env?: string }> = {
  host: { type: 'string', value: 'ADDR', default: '127.0.0.1', env: 'FINETUNE_HOST', description: 'address to listen on' },
  port: { type: 'int', min: 0, max: 65535, default: 8088, env: 'FINETUNE_PORT', description: 'port (0: any free port)' },
  'data-dir': {
    type: 'string',
    value: 'DIR',
    env: 'FINETUNE_DATA_DIR',
    description: 'where the database, uploaded files, jobs and models live (default $XDG_DATA_HOME/deepen/finetune, else ~/.local/share/deepen/finetune)',
  },
  'keys-file': {
    type: 'string',
    value: 'PATH',
    env: 'FINETUNE_KEYS_FILE',
    description: 'API keys: {"keys": [{"tenant", "key", "hf_token_file"?}]} (default DIR/api-keys.json, created with one key if neither it nor FINETUNE_API_KEYS exists)',
  },
  concurrency: { type: 'int', min: 1, max: 64, default: 1, env: 'FINETUNE_CONCURRENCY', description: 'jobs trained at the same time, each in its own process' },
  model: { type: 'list', value: 'NAME=PATH,...', description: 'base models besides the folders in DIR/models: a checkpoint folder or a pretrain run folder' },
  'models-dir': { type: 'string', value: 'DIR', description: 'folder of base models, one checkpoint folder each (default DIR/models)' },
  'model-repo': { type: 'list', value: 'NAME=OWNER/NAME,...', description: 'the Hub repository a base model came from: published fine-tunes name it as base_model' },
  'hub-url': { type: 'string', value: 'URL', default: DEFAULT_HUB_URL, env: 'HF_ENDPOINT', description: 'the Hugging Face Hub that publish targets go to' },
  backend: { type: 'string', value: 'NAME', description: `TensorFlow.js engine of the workers: auto, ${ENGINE_ORDER.join(', ')} (default: $${BACKEND_ENV_VAR} or auto)` },
  'max-body-mib': { type: 'float', min: 0, exclusiveMin: true, default: 1, description: 'largest JSON request body' },
  'max-upload-mib': { type: 'float', min: 0, exclusiveMin: true, default: 512, description: 'largest uploaded file' },
  'completion-timeout': { type: 'int', min: 1, default: 120, value: 'SECONDS', description: 'longest a completion may take' },
  'drain-seconds': {
    type: 'float',
    min: 0,
    default: 5,
    value: 'SECONDS',
    env: 'FINETUNE_DRAIN_SECONDS',
    description: 'on SIGTERM, how long readiness answers 503 while requests are still served, before the service stops listening (0: at once)',
  },
  quiet: { type: 'bool', description: 'no access log' },
};

const HELP = helpText(
  'finetune-service [options]',
  'The deepen fine-tuning service: an OpenAI-style fine-tuning jobs API over HTTP.\nAPI keys also come from FINETUNE_API_KEYS=tenant:key,tenant:key.',
  Object.fromEntries(Object.entries(FLAGS).map(([name, { env, ...spec }]) => [name, env ? { ...spec, description: `${spec.description}; env ${env}` } : spec])),
);

function parse(argv: string[]): FlagValues {
  const specs = Object.fromEntries(Object.entries(FLAGS).map(([name, { env, ...spec }]) => [name, env !== undefined && process.env[env] ? { ...spec, default: process.env[env] } : spec]));
  try {
    return parseFlags('finetune-service', argv, specs).values;
  } catch (error) {
    // A bad value that came from the environment is named as such.
    const message = (error as Error).message;
    const flag = /^--([\w-]+)/.exec(message)?.[1];
    const env = flag === undefined ? undefined : FLAGS[flag]?.env;
    if (error instanceof UsageError && env && process.env[env] && !argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`))) {
      throw new UsageError(message.replace(`--${flag}`, env));
    }
    throw error;
  }
}

function loadKeys(values: FlagValues, dataDir: string, log: (line: string) => void): { keys: ApiKeys; hubTokens: HubTokens } {
  const entries: KeyEntry[] = [];
  const warned = new Set<string>();
  const warn = (line: string) => {
    if (!warned.has(line)) log(`warning: ${line}`);
    warned.add(line);
  };
  const fromEnv = process.env.FINETUNE_API_KEYS;
  if (fromEnv !== undefined && fromEnv.trim() !== '') entries.push(...parseKeysVariable(fromEnv, 'FINETUNE_API_KEYS'));
  const defaultPath = dataPaths(dataDir).keys;
  if (values['keys-file'] !== undefined) entries.push(...readKeysFile(resolve(String(values['keys-file'])), warn));
  else if (existsSync(defaultPath)) entries.push(...readKeysFile(defaultPath, warn));
  else if (entries.length === 0) {
    const created = createKeysFile(defaultPath);
    log(`no API keys configured: created ${defaultPath} with a key for tenant '${created.tenant}':`);
    log(`  ${created.key}`);
    entries.push(created);
  }
  const seen = new Set<string>();
  for (const { key } of entries) {
    if (seen.has(key)) throw new Error('the same API key is configured twice (FINETUNE_API_KEYS and the keys file)');
    seen.add(key);
  }
  return { keys: new ApiKeys(entries), hubTokens: new HubTokens(entries) };
}

async function main(argv: string[]): Promise<number> {
  const log = (line: string) => process.stdout.write(`${line}\n`);
  let values: FlagValues;
  try {
    values = parse(argv);
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    values.backend = String(values.backend ?? (process.env[BACKEND_ENV_VAR] || 'auto'));
    parseEngineRequest(values.backend, argv.includes('--backend') ? '--backend' : BACKEND_ENV_VAR);
    try {
      values['hub-url'] = hubUrlFrom(String(values['hub-url']), {});
    } catch (error) {
      throw new UsageError(`${argv.some((a) => a === '--hub-url' || a.startsWith('--hub-url=')) ? '--hub-url' : 'HF_ENDPOINT'}: ${(error as Error).message}`);
    }
  } catch (error) {
    process.stderr.write(`finetune-service: ${(error as Error).message}\n(see finetune-service --help)\n`);
    return 2;
  }
  const dataDir = resolve(values['data-dir'] === undefined ? defaultDataDir() : String(values['data-dir']));
  let service;
  try {
    const modelsDir = values['models-dir'] === undefined ? dataPaths(dataDir).models : resolve(String(values['models-dir']));
    const baseModels = withHubRepos(
      discoverBaseModels(modelsDir, (values.model as string[] | undefined) ?? [], (line) => log(`warning: ${line}`)),
      (values['model-repo'] as string[] | undefined) ?? [],
    );
    const { keys, hubTokens } = loadKeys(values, dataDir, log);
    const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    log(`finetune-service ${version}: data in ${dataDir}`);
    log(`tenants: ${keys.tenants.join(', ')}`);
    log(`publishing to ${values['hub-url']}: ${hubTokens.tenants.length > 0 ? `tenants with a Hugging Face token: ${hubTokens.tenants.join(', ')}` : 'no tenant has a Hugging Face token (hf_token_file in the keys file)'}`);
    log(
      baseModels.length > 0
        ? `base models: ${baseModels.map((m) => `${m.id} (${m.contextLength} tokens, ${m.dir})`).join(', ')}`
        : `base models: none yet; put checkpoint folders in ${modelsDir} or pass --model NAME=PATH`,
    );
    service = await startService({
      host: String(values.host),
      port: Number(values.port),
      dataDir,
      keys,
      hubTokens,
      hubUrl: String(values['hub-url']),
      baseModels,
      concurrency: Number(values.concurrency),
      engine: String(values.backend),
      maxBodyBytes: Math.floor(Number(values['max-body-mib']) * MiB),
      maxUploadBytes: Math.floor(Number(values['max-upload-mib']) * MiB),
      completionTimeoutMs: Number(values['completion-timeout']) * 1000,
      stopGraceMs: 10_000,
      drainMs: Number(values['drain-seconds']) * 1000,
      version,
      log,
      accessLog: values.quiet !== true,
    });
  } catch (error) {
    process.stderr.write(`finetune-service: ${(error as Error).message}\n`);
    return 1;
  }
  log(`listening on ${service.url} (OpenAPI document at ${service.url}/openapi.json)`);
  const running = service;
  return new Promise<number>((done) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(130); // a second signal does not wait
      stopping = true;
      log(
        `${signal}: stopping: readiness answers 503 for ${Number(values['drain-seconds'])}s while requests still complete; ` +
          'running jobs save a checkpoint and resume at the next start (again to quit now)',
      );
      running.close().then(
        () => done(0),
        (error: unknown) => {
          process.stderr.write(`finetune-service: ${(error as Error).message}\n`);
          done(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

process.exitCode = await main(process.argv.slice(2));
