/**
 * A Hugging Face Hub on loopback for tests: the part of the HTTP API that @huggingface/hub's
 * repoExists, createRepo, createBranch, listFiles, modelInfo, commit (preupload, Git LFS batch
 * with basic and multipart transfers, NDJSON commit) and downloadFile (resolve with ranges) use.
 * It keeps repositories as commits of files in memory, checks tokens and namespaces like the Hub
 * (401 without a valid token, 403 without write access, 404 for unknown namespaces, repositories,
 * revisions and files, 409 for existing repositories and branches), verifies every uploaded
 * object against its sha256, and can be told to fail requests to exercise retries and errors.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubUser {
  name: string;
  /** Organizations the user may write to. */
  orgs?: string[];
  /** A read-only token: may read what the user can see, write nothing. */
  readOnly?: boolean;
}

export interface FakeHubOptions {
  /** Access tokens and whom they belong to. */
  users: Record<string, HubUser>;
  /** Namespaces that exist without a user behind a token (other people, organizations). */
  namespaces?: string[];
  /** LFS objects larger than this are uploaded in parts of this size (the multipart transfer). */
  multipartChunk?: number;
}

interface FileEntry {
  /** Regular files: the content. LFS files: null (the bytes are in the object store). */
  content: Buffer | null;
  lfs: { oid: string; size: number } | null;
}

interface Commit {
  oid: string;
  parent: string | null;
  title: string;
  files: Map<string, FileEntry>;
}

interface Repo {
  id: string;
  private: boolean;
  commits: Map<string, Commit>;
  refs: Map<string, string>;
}

export interface LoggedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
}

type Fault = { method: string; path: RegExp; times: number } & ({ status: number; body?: (req: IncomingMessage) => string } | { reset: 'before' | 'mid-body' });

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const gitBlobOid = (data: Buffer) => createHash('sha1').update(`blob ${data.byteLength}\0`).update(data).digest('hex');
const lfsPointer = (oid: string, size: number) => Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${size}\n`);

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export class FakeHub {
  url = '';
  readonly requests: LoggedRequest[] = [];
  private readonly repos = new Map<string, Repo>();
  /** LFS objects by repository and sha256 (the Hub deduplicates within a repository, not across). */
  private readonly objects = new Map<string, Buffer>();
  private readonly parts = new Map<string, Map<number, Buffer>>();
  private readonly faults: Fault[] = [];
  private readonly server: Server;

  constructor(private readonly options: FakeHubOptions) {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        const e = error instanceof HttpError ? error : new HttpError(500, (error as Error).message);
        if (res.headersSent) return res.destroy();
        res.writeHead(e.status, { 'Content-Type': 'application/json', ...(e.code ? { 'X-Error-Code': e.code } : {}) });
        res.end(JSON.stringify({ error: e.message }));
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The next `times` requests matching method and path fail with `status` (optionally a body built from the request). */
  failWith(method: string, path: RegExp, status: number, times = 1, body?: (req: IncomingMessage) => string): void {
    this.faults.push({ method, path, times, status, ...(body ? { body } : {}) });
  }

  /** The next `times` matching requests lose their connection, before the response or halfway through its body. */
  reset(method: string, path: RegExp, when: 'before' | 'mid-body', times = 1): void {
    this.faults.push({ method, path, times, reset: when });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** The repository's files at a revision, LFS content resolved. */
  files(repo: string, revision = 'main'): Map<string, Buffer> {
    const commit = this.commitAt(this.repoOrThrow(repo), revision);
    return new Map([...commit.files].map(([path, f]) => [path, f.content ?? this.objects.get(`${repo}/${f.lfs!.oid}`)!]));
  }

  /** Which files of a revision went through the LFS path. */
  lfsFiles(repo: string, revision = 'main'): string[] {
    return [...this.commitAt(this.repoOrThrow(repo), revision).files].filter(([, f]) => f.lfs).map(([p]) => p);
  }

  commits(repo: string, revision = 'main'): Array<{ oid: string; title: string }> {
    const r = this.repoOrThrow(repo);
    const out: Array<{ oid: string; title: string }> = [];
    for (let c: Commit | undefined = this.commitAt(r, revision); c; c = c.parent ? r.commits.get(c.parent) : undefined) out.push({ oid: c.oid, title: c.title });
    return out;
  }

  isPrivate(repo: string): boolean {
    return this.repoOrThrow(repo).private;
  }

  /** Replaces a stored file's bytes without changing its recorded hash, as a broken mirror would. */
  tamper(repo: string, path: string, revision = 'main'): void {
    const file = this.commitAt(this.repoOrThrow(repo), revision).files.get(path)!;
    if (file.lfs) {
      const key = `${repo}/${file.lfs.oid}`;
      const bytes = Buffer.from(this.objects.get(key)!);
      bytes[bytes.length - 1]! ^= 0xff;
      this.objects.set(key, bytes);
    } else {
      const bytes = Buffer.from(file.content!);
      bytes[0]! ^= 0x01;
      file.content = bytes;
    }
  }

  private repoOrThrow(id: string): Repo {
    const repo = this.repos.get(id);
    if (!repo) throw new Error(`no repository ${id}`);
    return repo;
  }

  private commitAt(repo: Repo, revision: string): Commit {
    const oid = repo.refs.get(revision) ?? (repo.commits.has(revision) ? revision : undefined);
    if (!oid) throw new HttpError(404, `Invalid rev id: ${revision}`, 'RevisionNotFound');
    return repo.commits.get(oid)!;
  }

  private user(req: IncomingMessage, required: boolean): HubUser | null {
    const header = req.headers.authorization;
    if (!header) {
      if (required) throw new HttpError(401, 'Invalid username or password.');
      return null;
    }
    const user = this.options.users[header.replace(/^Bearer /, '')];
    if (!user) throw new HttpError(401, 'Invalid credentials in Authorization header');
    return user;
  }

  private namespaceExists(ns: string): boolean {
    return (this.options.namespaces ?? []).includes(ns) || Object.values(this.options.users).some((u) => u.name === ns || (u.orgs ?? []).includes(ns));
  }

  private canWrite(user: HubUser, ns: string): boolean {
    return !user.readOnly && (user.name === ns || (user.orgs ?? []).includes(ns));
  }

  private canRead(user: HubUser | null, repo: Repo): boolean {
    return !repo.private || (user !== null && (user.name === repo.id.split('/')[0] || (user.orgs ?? []).includes(repo.id.split('/')[0]!)));
  }

  /** The repository if the request may read it; private repositories are invisible (404) to others, as on the Hub. */
  private readable(req: IncomingMessage, id: string): Repo {
    const repo = this.repos.get(id);
    if (!repo || !this.canRead(this.user(req, false), repo)) throw new HttpError(404, 'Repository not found', 'RepoNotFound');
    return repo;
  }

  private writable(req: IncomingMessage, id: string): Repo {
    const user = this.user(req, true)!;
    const repo = this.readable(req, id);
    if (!this.canWrite(user, id.split('/')[0]!)) throw new HttpError(403, `You don't have the rights to write to ${id}`);
    return repo;
  }

  private newCommit(repo: Repo, parent: Commit | null, title: string, files: Map<string, FileEntry>): Commit {
    const oid = createHash('sha1').update(randomBytes(16)).digest('hex');
    const commit: Commit = { oid, parent: parent?.oid ?? null, title, files };
    repo.commits.set(oid, commit);
    return commit;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, this.url);
    const path = decodeURIComponent(url.pathname);
    const method = req.method!;
    this.requests.push({ method, path, authorization: req.headers.authorization });
    const body = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });

    // A mid-body reset is meant for a download, not for the one-byte range probe before it.
    const fault = this.faults.find((f) => f.times > 0 && f.method === method && f.path.test(path) && !('reset' in f && f.reset === 'mid-body' && req.headers.range));
    if (fault) {
      fault.times--;
      if ('status' in fault) {
        res.writeHead(fault.status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: fault.body ? fault.body(req) : `injected ${fault.status}` }));
        return;
      }
      if (fault.reset === 'before') {
        req.socket.destroy();
        return;
      }
    }
    const midBodyReset = fault !== undefined && 'reset' in fault && fault.reset === 'mid-body';
    const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(value));
    };
    let m: RegExpExecArray | null;

    if (method === 'POST' && path === '/api/repos/create') {
      const user = this.user(req, true)!;
      const payload = JSON.parse(body.toString()) as { name: string; organization?: string; visibility?: string; type?: string };
      const ns = payload.organization ?? user.name;
      const id = `${ns}/${payload.name}`;
      if (!this.namespaceExists(ns)) throw new HttpError(404, `Namespace ${ns} not found`);
      if (!this.canWrite(user, ns)) throw new HttpError(403, `You don't have the rights to create a model under the namespace "${ns}"`);
      if (this.repos.has(id)) throw new HttpError(409, 'You already created this model repo');
      const repo: Repo = { id, private: payload.visibility === 'private', commits: new Map(), refs: new Map() };
      const initial = this.newCommit(repo, null, 'initial commit', new Map([['.gitattributes', { content: Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n'), lfs: null }]]));
      repo.refs.set('main', initial.oid);
      this.repos.set(id, repo);
      return json(200, { url: `${this.url}/${id}`, id });
    }
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)$/.exec(path)) && method === 'GET') {
      const repo = this.readable(req, m[1]!);
      return json(200, { _id: repo.id, id: repo.id, private: repo.private });
    }
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path)) && method === 'GET') {
      const repo = this.readable(req, m[1]!);
      const commit = this.commitAt(repo, m[2] === 'HEAD' ? 'main' : m[2]!);
      return json(200, { _id: repo.id, id: repo.id, private: repo.private, sha: commit.oid, lastModified: new Date().toISOString(), gated: false, downloads: 0, likes: 0, pipeline_tag: 'text-generation', siblings: [...commit.files.keys()].map((rfilename) => ({ rfilename })) });
    }
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/branch\/(.+)$/.exec(path)) && method === 'POST') {
      const repo = this.writable(req, m[1]!);
      if (repo.refs.has(m[2]!)) throw new HttpError(409, `Reference already exists: refs/heads/${m[2]}`);
      const { startingPoint } = JSON.parse(body.toString() || '{}') as { startingPoint?: string };
      repo.refs.set(m[2]!, this.commitAt(repo, startingPoint ?? 'main').oid);
      return json(200, {});
    }
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/preupload\/(.+)$/.exec(path)) && method === 'POST') {
      this.commitAt(this.writable(req, m[1]!), m[2]!);
      const { files } = JSON.parse(body.toString()) as { files: Array<{ path: string; size: number; sample?: string }> };
      // As the Hub decides: a large file, or one whose first bytes are binary (a NUL), goes through LFS.
      const binary = (sample?: string) => sample !== undefined && Buffer.from(sample, 'base64').includes(0);
      return json(200, { files: files.map((f) => ({ path: f.path, uploadMode: f.path.endsWith('.safetensors') || f.size > 10 * 1024 * 1024 || binary(f.sample) ? 'lfs' : 'regular', shouldIgnore: false })) });
    }
    if ((m = /^\/([^/]+\/[^/]+)\.git\/info\/lfs\/objects\/batch$/.exec(path)) && method === 'POST') {
      const repoId = this.writable(req, m[1]!).id;
      const payload = JSON.parse(body.toString()) as { operation: string; transfers: string[]; objects: Array<{ oid: string; size: number }> };
      if (payload.transfers.includes('xet')) throw new HttpError(400, 'this test Hub speaks no Xet');
      const chunk = this.options.multipartChunk;
      const objects = payload.objects.map(({ oid, size }) => {
        const key = `${repoId}/${oid}`;
        if (this.objects.has(key)) return { oid, size };
        if (chunk !== undefined && size > chunk) {
          const header: Record<string, string> = { chunk_size: String(chunk) };
          for (let i = 1; i <= Math.ceil(size / chunk); i++) header[String(i).padStart(5, '0')] = `${this.url}/lfs-part/${key}/${i}?X-Amz-Signature=s3cr3t`;
          return { oid, size, actions: { upload: { href: `${this.url}/lfs-complete/${key}`, header } } };
        }
        return { oid, size, actions: { upload: { href: `${this.url}/lfs-put/${key}?X-Amz-Signature=s3cr3t` }, verify: { href: `${this.url}/lfs-verify/${key}` } } };
      });
      return json(200, { transfer: 'basic', objects }, { 'Content-Type': 'application/vnd.git-lfs+json' });
    }
    if ((m = /^\/lfs-put\/([^/]+\/[^/]+)\/([0-9a-f]{64})$/.exec(path)) && method === 'PUT') {
      if (sha256(body) !== m[2]) throw new HttpError(400, 'content does not match its oid');
      this.objects.set(`${m[1]}/${m[2]}`, body);
      res.writeHead(200, { ETag: `"${m[2]}"` });
      return void res.end();
    }
    if ((m = /^\/lfs-part\/([^/]+\/[^/]+\/[0-9a-f]{64})\/(\d+)$/.exec(path)) && method === 'PUT') {
      const parts = this.parts.get(m[1]!) ?? new Map<number, Buffer>();
      this.parts.set(m[1]!, parts);
      parts.set(Number(m[2]), body);
      res.writeHead(200, { ETag: `"part-${m[2]}-${sha256(body).slice(0, 8)}"` });
      return void res.end();
    }
    if ((m = /^\/lfs-complete\/([^/]+\/[^/]+\/([0-9a-f]{64}))$/.exec(path)) && method === 'POST') {
      const { parts } = JSON.parse(body.toString()) as { parts: Array<{ partNumber: number; etag: string }> };
      const stored = this.parts.get(m[1]!);
      if (!stored) throw new HttpError(400, 'no parts uploaded');
      const data = Buffer.concat(parts.map((p) => {
        const part = stored.get(p.partNumber);
        if (!part || p.etag !== `"part-${p.partNumber}-${sha256(part).slice(0, 8)}"`) throw new HttpError(400, `part ${p.partNumber}: missing or wrong ETag`);
        return part;
      }));
      if (sha256(data) !== m[2]) throw new HttpError(400, 'assembled content does not match its oid');
      this.objects.set(m[1]!, data);
      return json(200, {});
    }
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/commit\/(.+)$/.exec(path)) && method === 'POST') {
      const repo = this.writable(req, m[1]!);
      const parent = this.commitAt(repo, m[2]!);
      if (!repo.refs.has(m[2]!)) throw new HttpError(400, `${m[2]} is not a branch`);
      const files = new Map(parent.files);
      let title = '';
      for (const line of body.toString().split('\n').filter(Boolean)) {
        const { key, value } = JSON.parse(line) as { key: string; value: Record<string, string | number> };
        if (key === 'header') {
          title = String(value.summary);
          if (value.parentCommit && value.parentCommit !== parent.oid) throw new HttpError(409, 'A commit has happened since. Please refresh and try again.');
        } else if (key === 'file') {
          files.set(String(value.path), { content: Buffer.from(String(value.content), 'base64'), lfs: null });
        } else if (key === 'lfsFile') {
          const stored = this.objects.get(`${repo.id}/${value.oid}`);
          if (!stored || stored.byteLength !== value.size) throw new HttpError(422, `LFS object ${value.oid} of ${value.path} was not uploaded`);
          files.set(String(value.path), { content: null, lfs: { oid: String(value.oid), size: Number(value.size) } });
        } else if (key === 'deletedFile') {
          if (!files.delete(String(value.path))) throw new HttpError(404, `${value.path} does not exist`);
        } else throw new HttpError(400, `unknown commit operation ${key}`);
      }
      const commit = this.newCommit(repo, parent, title, files);
      repo.refs.set(m[2]!, commit.oid);
      return json(200, { success: true, commitOid: commit.oid, commitUrl: `${this.url}/${repo.id}/commit/${commit.oid}`, hookOutput: '' });
    }
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/.exec(path)) && method === 'GET') {
      const commit = this.commitAt(this.readable(req, m[1]!), m[2]!);
      const entries = [...commit.files]
        .filter(([p]) => !m![3] || p.startsWith(`${m![3]}/`))
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([p, f]) =>
          f.lfs
            ? { type: 'file', path: p, size: f.lfs.size, oid: gitBlobOid(lfsPointer(f.lfs.oid, f.lfs.size)), lfs: { oid: f.lfs.oid, size: f.lfs.size, pointerSize: lfsPointer(f.lfs.oid, f.lfs.size).byteLength } }
            : { type: 'file', path: p, size: f.content!.byteLength, oid: gitBlobOid(f.content!) },
        );
      return json(200, entries);
    }
    if ((m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path)) && method === 'GET') {
      const commit = this.commitAt(this.readable(req, m[1]!), m[2]!);
      const file = commit.files.get(m[3]!);
      if (!file) throw new HttpError(404, 'Entry not found', 'EntryNotFound');
      const data = file.content ?? this.objects.get(`${m[1]}/${file.lfs!.oid}`)!;
      const etag = `"${file.lfs ? file.lfs.oid : gitBlobOid(data)}"`;
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      const headers: Record<string, string> = { ETag: etag, 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes', 'X-Repo-Commit': commit.oid };
      if (range) {
        const start = Number(range[1]);
        const end = range[2] ? Math.min(Number(range[2]), data.byteLength - 1) : data.byteLength - 1;
        res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${data.byteLength}`, 'Content-Length': String(end - start + 1) });
        return void res.end(data.subarray(start, end + 1));
      }
      res.writeHead(200, { ...headers, 'Content-Length': String(data.byteLength) });
      if (midBodyReset) {
        res.write(data.subarray(0, data.byteLength >> 1));
        setTimeout(() => res.destroy(), 20);
        return;
      }
      return void res.end(data);
    }
    throw new HttpError(404, `no route for ${method} ${path}`);
  }
}
