import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlobStore } from './blobs.js';
import type { ServiceContext } from './context.js';
import { dispatcher } from './http/dispatch.js';
import { InferenceClient } from './inference.js';
import type { ApiKeys, HubTokens } from './keys.js';
import { ModelRegistry, type BaseModel } from './models.js';
import { openApiDocument } from './openapi.js';
import { fileRoutes } from './routes/files.js';
import { jobRoutes } from './routes/jobs.js';
import { modelRoutes } from './routes/models.js';
import { systemRoutes } from './routes/system.js';
import { Scheduler } from './scheduler.js';
import { SqliteStore } from './store/sqlite.js';

export interface ServiceOptions {
  host: string;
  port: number;
  dataDir: string;
  keys: ApiKeys;
  /** Each tenant's Hugging Face token, for publish targets. */
  hubTokens: HubTokens;
  /** The Hugging Face Hub that publish targets go to. */
  hubUrl: string;
  baseModels: BaseModel[];
  concurrency: number;
  /** TensorFlow.js engine request for the worker processes. */
  engine: string;
  maxBodyBytes: number;
  maxUploadBytes: number;
  completionTimeoutMs: number;
  stopGraceMs: number;
  /** How long close() keeps serving, readiness answering 503, before it stops listening. */
  drainMs: number;
  version: string;
  log: (line: string) => void;
  /** Log every request (the access log). */
  accessLog: boolean;
}

export interface RunningService {
  url: string;
  server: Server;
  scheduler: Scheduler;
  /**
   * Drains (readiness answers 503 while requests are still served) as running jobs checkpoint
   * and pause, then stops listening and closes the database.
   */
  close(): Promise<void>;
}

/**
 * Where the service keeps its data when neither --data-dir nor FINETUNE_DATA_DIR says:
 * $XDG_DATA_HOME/deepen/finetune, else ~/.local/share/deepen/finetune. A per-user folder,
 * the same whatever the working directory (pnpm --filter runs scripts inside the package).
 */
export function defaultDataDir(env: Record<string, string | undefined> = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  // The XDG spec ignores a relative XDG_DATA_HOME.
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.local', 'share'), 'deepen', 'finetune');
}

/** The data directory's layout. */
export const dataPaths = (dataDir: string) => ({
  database: join(dataDir, 'finetune.db'),
  files: join(dataDir, 'files'),
  jobs: join(dataDir, 'jobs'),
  models: join(dataDir, 'models'),
  keys: join(dataDir, 'api-keys.json'),
});

const workerEntry = (name: string) => fileURLToPath(new URL(`./worker/${name}.js`, import.meta.url));

export async function startService(o: ServiceOptions): Promise<RunningService> {
  const paths = dataPaths(o.dataDir);
  const store = new SqliteStore(paths.database);
  const blobs = new BlobStore(paths.files);
  const models = new ModelRegistry(o.baseModels, store);
  const scheduler = new Scheduler({
    store,
    blobs,
    models,
    jobsDir: paths.jobs,
    workerPath: workerEntry('train'),
    publisherPath: workerEntry('publish'),
    hubUrl: o.hubUrl,
    hubTokens: o.hubTokens,
    engine: o.engine,
    concurrency: o.concurrency,
    stopGraceMs: o.stopGraceMs,
    log: o.log,
  });
  const inference = new InferenceClient({ workerPath: workerEntry('inference'), engine: o.engine, timeoutMs: o.completionTimeoutMs, log: o.log });
  let accepting = true;
  const ctx: ServiceContext = { store, blobs, models, scheduler, inference, hubTokens: o.hubTokens, maxUploadBytes: o.maxUploadBytes, accepting: () => accepting };
  let document: unknown = null;
  const routes = [...fileRoutes(ctx), ...jobRoutes(ctx), ...modelRoutes(ctx)];
  routes.push(...systemRoutes(ctx, () => (document ??= openApiDocument(routes, { version: o.version }))));

  await scheduler.start();
  const handle = dispatcher({ routes, keys: o.keys, maxBodyBytes: o.maxBodyBytes, log: o.accessLog ? o.log : () => {} });
  const server = createServer((req, res) => {
    // While draining, each answer closes its connection: a client (a load balancer's pool)
    // opens its next one elsewhere rather than keep using an instance that is going away.
    if (!accepting) res.setHeader('connection', 'close');
    handle(req, res);
  });
  // Large uploads on slow links need longer than Node's 5-minute default to arrive.
  server.requestTimeout = 60 * 60 * 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    server,
    scheduler,
    async close() {
      accepting = false;
      // Running jobs save a checkpoint meanwhile.
      const stopped = scheduler.shutdown();
      // Readiness answers 503 for the drain period, so that a load balancer takes this instance
      // out before it stops listening; requests that still come are served as usual.
      await new Promise((resolve) => setTimeout(resolve, o.drainMs));
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeIdleConnections();
      await stopped;
      inference.close();
      server.closeAllConnections();
      await closed;
      await scheduler.validated();
      await store.close();
    },
  };
}
