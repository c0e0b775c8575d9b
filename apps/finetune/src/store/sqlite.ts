import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  ACTIVE_STATUSES,
  UnknownCursorError,
  type CheckpointRecord,
  type EventRecord,
  type FileRecord,
  type JobRecord,
  type JobStatus,
  type JournaledEntry,
  type ModelRecord,
  type Page,
  type PageRequest,
  type Store,
} from './types.js';

/** Schema migrations, applied in order; PRAGMA user_version records how many ran. */
const MIGRATIONS = [
  `
  CREATE TABLE files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    examples INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX files_by_tenant ON files (tenant, seq);
  CREATE INDEX files_by_sha256 ON files (sha256);

  CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    training_file TEXT NOT NULL,
    validation_file TEXT,
    training_sha256 TEXT NOT NULL,
    validation_sha256 TEXT,
    hyperparameters TEXT NOT NULL,
    total_steps INTEGER NOT NULL,
    suffix TEXT,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    fine_tuned_model TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    trained_tokens INTEGER,
    worker_pid INTEGER
  );
  CREATE INDEX jobs_by_tenant ON jobs (tenant, seq);
  CREATE INDEX jobs_by_status ON jobs (status, seq);

  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    created_at INTEGER NOT NULL,
    level TEXT NOT NULL,
    type TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT
  );
  CREATE INDEX events_by_job ON events (job_id, seq);

  CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    step INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    model_id TEXT NOT NULL UNIQUE,
    dir TEXT NOT NULL,
    metrics TEXT NOT NULL,
    UNIQUE (job_id, step)
  );

  CREATE TABLE models (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    job_id TEXT NOT NULL UNIQUE REFERENCES jobs (id),
    base_model TEXT NOT NULL,
    dir TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX models_by_tenant ON models (tenant, seq);
  `,
  // A job's publish target and its outcome, as JSON (no credentials: those stay in memory).
  `
  ALTER TABLE jobs ADD COLUMN publish TEXT;
  `,
  // The key of an event a training worker journaled (step-12, ...): one event per key and job,
  // so that replaying a journal after a crash adds only what the store lacks.
  `
  ALTER TABLE events ADD COLUMN journal_key TEXT;
  CREATE UNIQUE INDEX events_by_journal_key ON events (job_id, journal_key);
  `,
];

type Row = Record<string, unknown>;

const fileFromRow = (r: Row): FileRecord => ({
  id: r.id as string,
  tenant: r.tenant as string,
  filename: r.filename as string,
  purpose: r.purpose as 'fine-tune',
  bytes: r.bytes as number,
  sha256: r.sha256 as string,
  format: r.format as FileRecord['format'],
  examples: r.examples as number,
  createdAt: r.created_at as number,
});

const jobFromRow = (r: Row): JobRecord => ({
  id: r.id as string,
  tenant: r.tenant as string,
  model: r.model as string,
  trainingFile: r.training_file as string,
  validationFile: (r.validation_file as string | null) ?? null,
  trainingSha256: r.training_sha256 as string,
  validationSha256: (r.validation_sha256 as string | null) ?? null,
  hyperparameters: JSON.parse(r.hyperparameters as string),
  totalSteps: r.total_steps as number,
  suffix: (r.suffix as string | null) ?? null,
  seed: r.seed as number,
  status: r.status as JobStatus,
  error: r.error === null ? null : JSON.parse(r.error as string),
  fineTunedModel: r.fine_tuned_model as string,
  createdAt: r.created_at as number,
  startedAt: (r.started_at as number | null) ?? null,
  finishedAt: (r.finished_at as number | null) ?? null,
  trainedTokens: (r.trained_tokens as number | null) ?? null,
  publish: r.publish === null || r.publish === undefined ? null : JSON.parse(r.publish as string),
  workerPid: (r.worker_pid as number | null) ?? null,
});

/** JobRecord fields as columns (JSON for the structured ones). */
const JOB_COLUMNS: Record<keyof Omit<JobRecord, 'id' | 'tenant'>, [string, (v: never) => unknown]> = {
  model: ['model', (v) => v],
  trainingFile: ['training_file', (v) => v],
  validationFile: ['validation_file', (v) => v],
  trainingSha256: ['training_sha256', (v) => v],
  validationSha256: ['validation_sha256', (v) => v],
  hyperparameters: ['hyperparameters', (v) => JSON.stringify(v)],
  totalSteps: ['total_steps', (v) => v],
  suffix: ['suffix', (v) => v],
  seed: ['seed', (v) => v],
  status: ['status', (v) => v],
  error: ['error', (v) => (v === null ? null : JSON.stringify(v))],
  fineTunedModel: ['fine_tuned_model', (v) => v],
  createdAt: ['created_at', (v) => v],
  startedAt: ['started_at', (v) => v],
  finishedAt: ['finished_at', (v) => v],
  trainedTokens: ['trained_tokens', (v) => v],
  publish: ['publish', (v) => (v === null ? null : JSON.stringify(v))],
  workerPid: ['worker_pid', (v) => v],
};

const eventFromRow = (r: Row): EventRecord => ({
  seq: r.seq as number,
  id: r.id as string,
  jobId: r.job_id as string,
  createdAt: r.created_at as number,
  level: r.level as EventRecord['level'],
  type: r.type as EventRecord['type'],
  message: r.message as string,
  data: r.data === null ? null : JSON.parse(r.data as string),
});

const checkpointFromRow = (r: Row): CheckpointRecord => ({
  id: r.id as string,
  jobId: r.job_id as string,
  step: r.step as number,
  createdAt: r.created_at as number,
  modelId: r.model_id as string,
  dir: r.dir as string,
  metrics: JSON.parse(r.metrics as string),
});

const modelFromRow = (r: Row): ModelRecord => ({
  id: r.id as string,
  tenant: r.tenant as string,
  jobId: r.job_id as string,
  baseModel: r.base_model as string,
  dir: r.dir as string,
  createdAt: r.created_at as number,
});

const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/**
 * The embedded store: one SQLite database file in the data directory, in WAL mode with full
 * synchronisation, so a write the API has answered survives SIGKILL and power loss.
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new Error(`${path}: database schema version ${version} is newer than this service understands (${MIGRATIONS.length}); upgrade the service`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** A page of `table`'s rows for `where`, newest first, after the row with id `after`. */
  private page<T>(table: string, where: string, params: unknown[], request: PageRequest, map: (r: Row) => T): Page<T> {
    let cursor = '';
    const args = [...params];
    if (request.after !== undefined) {
      const row = this.db.prepare(`SELECT seq FROM ${table} WHERE ${where} AND id = ?`).get(...params, request.after) as { seq: number } | undefined;
      if (!row) throw new UnknownCursorError(request.after);
      cursor = ' AND seq < ?';
      args.push(row.seq);
    }
    const rows = this.db.prepare(`SELECT * FROM ${table} WHERE ${where}${cursor} ORDER BY seq DESC LIMIT ?`).all(...args, request.limit + 1) as Row[];
    return { data: rows.slice(0, request.limit).map(map), hasMore: rows.length > request.limit };
  }

  async insertFile(f: FileRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO files (id, tenant, filename, purpose, bytes, sha256, format, examples, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(f.id, f.tenant, f.filename, f.purpose, f.bytes, f.sha256, f.format, f.examples, f.createdAt);
  }

  async getFile(tenant: string, id: string): Promise<FileRecord | null> {
    const row = this.db.prepare('SELECT * FROM files WHERE tenant = ? AND id = ?').get(tenant, id) as Row | undefined;
    return row ? fileFromRow(row) : null;
  }

  async listFiles(tenant: string, request: PageRequest & { purpose?: string }): Promise<Page<FileRecord>> {
    return request.purpose === undefined
      ? this.page('files', 'tenant = ?', [tenant], request, fileFromRow)
      : this.page('files', 'tenant = ? AND purpose = ?', [tenant, request.purpose], request, fileFromRow);
  }

  async deleteFile(tenant: string, id: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM files WHERE tenant = ? AND id = ?').run(tenant, id).changes > 0;
  }

  async blobReferenced(sha256: string): Promise<boolean> {
    const files = this.db.prepare('SELECT 1 FROM files WHERE sha256 = ? LIMIT 1').get(sha256);
    const jobs = this.db
      .prepare(`SELECT 1 FROM jobs WHERE (training_sha256 = ? OR validation_sha256 = ?) AND status IN (${placeholders(ACTIVE_STATUSES.length)}) LIMIT 1`)
      .get(sha256, sha256, ...ACTIVE_STATUSES);
    return files !== undefined || jobs !== undefined;
  }

  async insertJob(job: JobRecord): Promise<void> {
    const columns = Object.entries(JOB_COLUMNS);
    this.db
      .prepare(`INSERT INTO jobs (id, tenant, ${columns.map(([, [c]]) => c).join(', ')}) VALUES (${placeholders(columns.length + 2)})`)
      .run(job.id, job.tenant, ...columns.map(([key, [, encode]]) => encode(job[key as keyof JobRecord] as never)));
  }

  async getJob(tenant: string, id: string): Promise<JobRecord | null> {
    const row = this.db.prepare('SELECT * FROM jobs WHERE tenant = ? AND id = ?').get(tenant, id) as Row | undefined;
    return row ? jobFromRow(row) : null;
  }

  async findJob(id: string): Promise<JobRecord | null> {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return row ? jobFromRow(row) : null;
  }

  async listJobs(tenant: string, request: PageRequest): Promise<Page<JobRecord>> {
    return this.page('jobs', 'tenant = ?', [tenant], request, jobFromRow);
  }

  async jobsWithStatus(statuses: readonly JobStatus[]): Promise<JobRecord[]> {
    return (this.db.prepare(`SELECT * FROM jobs WHERE status IN (${placeholders(statuses.length)}) ORDER BY seq`).all(...statuses) as Row[]).map(jobFromRow);
  }

  async activeJobsUsingFile(tenant: string, fileId: string): Promise<number> {
    const row = this.db
      .prepare(`SELECT COUNT(*) AS n FROM jobs WHERE tenant = ? AND (training_file = ? OR validation_file = ?) AND status IN (${placeholders(ACTIVE_STATUSES.length)})`)
      .get(tenant, fileId, fileId, ...ACTIVE_STATUSES) as { n: number };
    return row.n;
  }

  private update(id: string, from: readonly JobStatus[], patch: Partial<Omit<JobRecord, 'id' | 'tenant'>>): JobRecord | null {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined);
    const sets = entries.map(([key]) => `${JOB_COLUMNS[key as keyof typeof JOB_COLUMNS][0]} = ?`);
    const values = entries.map(([key, v]) => JOB_COLUMNS[key as keyof typeof JOB_COLUMNS][1](v as never));
    const changed =
      sets.length === 0
        ? 1
        : this.db.prepare(`UPDATE jobs SET ${sets.join(', ')} WHERE id = ? AND status IN (${placeholders(from.length)})`).run(...values, id, ...from).changes;
    if (changed === 0) return null;
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Row;
    return jobFromRow(row);
  }

  async updateJob(id: string, from: readonly JobStatus[], patch: Partial<Omit<JobRecord, 'id' | 'tenant'>>): Promise<JobRecord | null> {
    return this.db.transaction(() => this.update(id, from, patch))();
  }

  async jobsAwaitingPublish(): Promise<JobRecord[]> {
    return (
      this.db.prepare("SELECT * FROM jobs WHERE status = 'succeeded' AND json_extract(publish, '$.status') IN ('pending', 'publishing') ORDER BY seq").all() as Row[]
    ).map(jobFromRow);
  }

  async claimQueuedJob(patch: Partial<Omit<JobRecord, 'id' | 'tenant' | 'status'>>): Promise<JobRecord | null> {
    return this.db.transaction(() => {
      const next = this.db.prepare("SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").get() as { id: string } | undefined;
      return next ? this.update(next.id, ['queued'], { ...patch, status: 'running' }) : null;
    })();
  }

  /** Inserts an event; with a journal key already recorded for its job, inserts nothing and returns null. */
  private insertEvent(e: Omit<EventRecord, 'seq'>, journalKey: string | null): EventRecord | null {
    const info = this.db
      .prepare('INSERT INTO events (id, job_id, created_at, level, type, message, data, journal_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, journal_key) DO NOTHING')
      .run(e.id, e.jobId, e.createdAt, e.level, e.type, e.message, e.data === null ? null : JSON.stringify(e.data), journalKey);
    return info.changes === 0 ? null : { ...e, seq: Number(info.lastInsertRowid) };
  }

  async addEvent(e: Omit<EventRecord, 'seq'>): Promise<EventRecord> {
    return this.insertEvent(e, null)!;
  }

  async addJournaled(entries: JournaledEntry[]): Promise<EventRecord[]> {
    return this.db.transaction(() => {
      const added: EventRecord[] = [];
      for (const entry of entries) {
        const event = this.insertEvent(entry.event, entry.key);
        if (event === null) continue;
        if (entry.checkpoint) this.insertCheckpoint(entry.checkpoint);
        added.push(event);
      }
      return added;
    })();
  }

  async listEvents(jobId: string, request: PageRequest): Promise<Page<EventRecord>> {
    return this.page('events', 'job_id = ?', [jobId], request, eventFromRow);
  }

  async eventsSince(jobId: string, seq: number, limit: number): Promise<EventRecord[]> {
    return (this.db.prepare('SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?').all(jobId, seq, limit) as Row[]).map(eventFromRow);
  }

  async eventSeq(jobId: string, eventId: string): Promise<number | null> {
    const row = this.db.prepare('SELECT seq FROM events WHERE job_id = ? AND id = ?').get(jobId, eventId) as { seq: number } | undefined;
    return row?.seq ?? null;
  }

  async putCheckpoint(c: CheckpointRecord): Promise<void> {
    this.insertCheckpoint(c);
  }

  private insertCheckpoint(c: CheckpointRecord): void {
    this.db
      .prepare(
        `INSERT INTO checkpoints (id, job_id, step, created_at, model_id, dir, metrics) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (job_id, step) DO UPDATE SET created_at = excluded.created_at, dir = excluded.dir, metrics = excluded.metrics`,
      )
      .run(c.id, c.jobId, c.step, c.createdAt, c.modelId, c.dir, JSON.stringify(c.metrics));
  }

  async listCheckpoints(jobId: string, request: PageRequest): Promise<Page<CheckpointRecord>> {
    return this.page('checkpoints', 'job_id = ?', [jobId], request, checkpointFromRow);
  }

  async findCheckpointModel(tenant: string, modelId: string): Promise<CheckpointRecord | null> {
    const row = this.db
      .prepare('SELECT c.* FROM checkpoints c JOIN jobs j ON j.id = c.job_id WHERE j.tenant = ? AND c.model_id = ?')
      .get(tenant, modelId) as Row | undefined;
    return row ? checkpointFromRow(row) : null;
  }

  async insertModel(m: ModelRecord): Promise<void> {
    this.db.prepare('INSERT INTO models (id, tenant, job_id, base_model, dir, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(m.id, m.tenant, m.jobId, m.baseModel, m.dir, m.createdAt);
  }

  async getModel(tenant: string, id: string): Promise<ModelRecord | null> {
    const row = this.db.prepare('SELECT * FROM models WHERE tenant = ? AND id = ?').get(tenant, id) as Row | undefined;
    return row ? modelFromRow(row) : null;
  }

  async listModels(tenant: string): Promise<ModelRecord[]> {
    return (this.db.prepare('SELECT * FROM models WHERE tenant = ? ORDER BY seq').all(tenant) as Row[]).map(modelFromRow);
  }

  async ping(): Promise<boolean> {
    return (this.db.prepare('SELECT 1 AS ok').get() as { ok: number }).ok === 1;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
