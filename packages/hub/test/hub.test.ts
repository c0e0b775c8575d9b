import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '@deepen/models';
import { applyPlan, removeLayersPlan } from '@deepen/pruner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { summarizeSafetensors } from '@deepen/core';
import { download, HubError, planPublish, publish, repoCacheDir, type PublishOptions, type PublishProgress, type RetryNotice } from '../src/index.js';
import { saveExport, trainedRun, type TrainedRun } from './fixtures.js';
import { FakeHub } from '../src/testing.js';

const TOKEN = 'hf_alice_write_7Hq2mZ9xK4pLw8';
const READ_ONLY = 'hf_alice_read_3Jd8sQ1vB6nYc5';
const BOB = 'hf_bob_write_9Tn4eW2rF7uGa1';
const root = mkdtempSync(join(tmpdir(), 'deepen-hub-'));
/** No HF_TOKEN and an empty HF_HOME: nothing from the machine running the tests leaks in. */
const env = { HF_HOME: join(root, 'hf-home') };
const fast = { retries: 3, baseDelayMs: 5, maxDelayMs: 20 };
let hub: FakeHub;
let run: TrainedRun;

beforeAll(async () => {
  hub = await new FakeHub({ users: { [TOKEN]: { name: 'alice', orgs: ['lab'] }, [READ_ONLY]: { name: 'alice', readOnly: true }, [BOB]: { name: 'bob' } }, namespaces: ['carol'], multipartChunk: 32 * 1024 }).start();
  run = await trainedRun(join(root, 'run'));
});

afterAll(async () => {
  run?.model.dispose();
  await hub?.close();
});

/** Publishes with the loopback Hub, collecting everything publish reports. */
async function publishLogged(path: string, options: Partial<PublishOptions> & { repo: string }) {
  const progress: PublishProgress[] = [];
  const retries: RetryNotice[] = [];
  const result = await publish(path, { token: TOKEN, hubUrl: hub.url, env, retry: fast, onProgress: (e) => progress.push(e), onRetry: (r) => retries.push(r), ...options });
  return { result, progress, retries };
}

async function failure(promise: Promise<unknown>): Promise<HubError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HubError);
  return error as HubError;
}

const bytes = (dir: string, file: string) => readFileSync(join(dir, file));

describe('publish', () => {
  it("uploads a run's newest checkpoint byte for byte, weights through the LFS path, and never its optimizer state", async () => {
    const { result, progress, retries } = await publishLogged(run.runDir, { repo: 'alice/tiny-lns', private: true, commitMessage: 'first upload' });
    expect(result.checkpoint).toBe(join(run.runDir, 'checkpoints', 'step-0000004'));
    expect(result).toMatchObject({ created: true, revision: 'main', deleted: [], url: `${hub.url}/alice/tiny-lns` });
    expect(hub.isPrivate('alice/tiny-lns')).toBe(true);
    const files = hub.files('alice/tiny-lns');
    expect([...files.keys()].sort()).toEqual(['.gitattributes', 'README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']) expect(files.get(f)!.equals(bytes(result.checkpoint, f)), f).toBe(true);
    expect(hub.lfsFiles('alice/tiny-lns')).toEqual(['model.safetensors']);
    expect(hub.commits('alice/tiny-lns')[0]!.title).toBe('first upload');
    expect(result.commit!.oid).toBe(hub.commits('alice/tiny-lns')[0]!.oid);

    // model.safetensors is larger than the server's 32 KiB part size: uploaded in parts, to storage that never sees the token.
    const size = statSync(join(result.checkpoint, 'model.safetensors')).size;
    expect(hub.requests.filter((r) => r.path.startsWith('/lfs-part/'))).toHaveLength(Math.ceil(size / (32 * 1024)));
    expect(hub.requests.filter((r) => r.path.startsWith('/lfs-')).every((r) => r.authorization === undefined)).toBe(true);

    const uploads = progress.filter((e): e is Extract<PublishProgress, { kind: 'file' }> => e.kind === 'file' && e.path === 'model.safetensors');
    expect(uploads.some((e) => e.state === 'hashing')).toBe(true);
    expect(uploads.filter((e) => e.state === 'uploading').at(-1)).toMatchObject({ fraction: 1, size });
    expect(uploads.some((e) => e.state === 'uploading' && e.fraction > 0 && e.fraction < 1)).toBe(true); // byte progress across the parts
    expect(retries).toEqual([]);
    expect(JSON.stringify([result, progress])).not.toContain(TOKEN);

    // tokenizer_config.json tells AutoTokenizer which special tokens config.json's ids are.
    const tokenizerConfig = JSON.parse(files.get('tokenizer_config.json')!.toString());
    const specials = new Map((JSON.parse(bytes(result.checkpoint, 'tokenizer.json').toString()).added_tokens as Array<{ id: number; content: string }>).map((t) => [t.id, t.content]));
    const config = JSON.parse(bytes(result.checkpoint, 'config.json').toString());
    expect(tokenizerConfig).toMatchObject({ tokenizer_class: 'PreTrainedTokenizerFast', eos_token: specials.get(config.eos_token_id), model_max_length: 32 });
  });

  it('re-publishing replaces the weights and deletes the ones they would shadow; a revision gets its own branch', async () => {
    const sharded = await saveExport(run, join(root, 'sharded'), { maxShardBytes: 30_000 });
    const shards = readdirSync(sharded).filter((f) => /^model-\d+-of-\d+\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(1);
    const { result } = await publishLogged(sharded, { repo: 'alice/tiny-lns' });
    expect(result).toMatchObject({ created: false, deleted: ['model.safetensors'] });
    const files = hub.files('alice/tiny-lns');
    expect(files.has('model.safetensors')).toBe(false);
    for (const f of [...shards, 'model.safetensors.index.json']) expect(files.get(f)!.equals(bytes(sharded, f)), f).toBe(true);

    const branch = await publishLogged(run.checkpoint, { repo: 'alice/tiny-lns', revision: 'experiment', commitMessage: 'lns, step 4' });
    expect(branch.result).toMatchObject({ revision: 'experiment', deleted: ['model.safetensors.index.json', ...shards].sort(), url: `${hub.url}/alice/tiny-lns/tree/experiment` });
    expect(hub.files('alice/tiny-lns', 'experiment').get('model.safetensors')!.equals(bytes(run.checkpoint, 'model.safetensors'))).toBe(true);
    expect(hub.commits('alice/tiny-lns', 'experiment')[0]!.title).toBe('lns, step 4');
    expect(hub.files('alice/tiny-lns').has('model.safetensors')).toBe(false); // main is untouched
  });

  it('publishes GGUF files beside the safetensors, through the LFS path, and lists them on the card', async () => {
    const gguf = join(root, 'tiny-lns-Q8_0.gguf');
    writeFileSync(gguf, Buffer.concat([Buffer.from('GGUF'), Buffer.from([3, 0, 0, 0]), Buffer.alloc(40_000, 7)])); // binary from its version field on
    const { result } = await publishLogged(run.checkpoint, { repo: 'alice/tiny-gguf', gguf: [{ path: 'tiny-lns-Q8_0.gguf', source: gguf, dtype: 'q8_0' }] });
    const files = hub.files('alice/tiny-gguf');
    expect(files.get('tiny-lns-Q8_0.gguf')!.equals(readFileSync(gguf))).toBe(true);
    expect(hub.lfsFiles('alice/tiny-gguf')).toContain('tiny-lns-Q8_0.gguf');
    const card = files.get('README.md')!.toString();
    expect(card).toContain('## GGUF (llama.cpp, Ollama, LM Studio)');
    expect(card).toContain('| `tiny-lns-Q8_0.gguf` | Q8_0 | 39.1 KiB |');
    expect(card).toContain('ollama run hf.co/alice/tiny-gguf:Q8_0');
    expect(result.files.map((f) => f.path)).toContain('tiny-lns-Q8_0.gguf');
    expect(() => planPublish(run.checkpoint, { repo: 'alice/x', gguf: [{ path: '../escape.gguf', source: gguf, dtype: 'f16' }] })).toThrow('GGUF file name "../escape.gguf" must be a plain file name ending in .gguf');
  });

  it('a dry run writes exactly the folder that would be uploaded, without a token or a request', async () => {
    const out = join(root, 'dry-run');
    const before = hub.requests.length;
    const dry = await publish(run.runDir, { repo: 'lab/tiny', dryRun: out, env });
    expect(hub.requests.length).toBe(before);
    expect(dry.commit).toBeNull();
    expect(readdirSync(out).sort()).toEqual(dry.files.map((f) => f.path).sort());
    for (const f of dry.files) expect(statSync(join(out, f.path)).size, f.path).toBe(f.size);

    await publishLogged(run.runDir, { repo: 'lab/tiny' });
    const uploaded = hub.files('lab/tiny');
    for (const f of dry.files) expect(uploaded.get(f.path)!.equals(bytes(out, f.path)), f.path).toBe(true);
    await expect(publish(run.runDir, { repo: 'lab/tiny', dryRun: out, env })).rejects.toThrow(/already holds files/);
  });

  it('retries transient failures: a 503 from storage, a dropped connection, a 502 on commit', async () => {
    hub.failWith('PUT', /^\/lfs-part\//, 503);
    hub.reset('POST', /\/preupload\//, 'before');
    hub.failWith('POST', /\/commit\//, 502);
    const { result, retries } = await publishLogged(run.checkpoint, { repo: 'alice/retried' });
    expect(hub.files('alice/retried').get('model.safetensors')!.equals(bytes(result.checkpoint, 'model.safetensors'))).toBe(true);
    expect(retries.map((r) => r.reason).sort()).toEqual(['502 Bad Gateway', '503 Service Unavailable', expect.stringMatching(/ECONNRESET|UND_ERR_SOCKET|network error/)].sort());
    expect(retries.find((r) => r.reason.startsWith('503'))!.request).toMatch(/^PUT http:\/\/127\.0\.0\.1:\d+\/lfs-part\/alice\/retried\/[0-9a-f]{64}\/\d$/); // no presigned query
    hub.failWith('POST', /\/preupload\//, 500, 10);
    const error = await failure(publishLogged(run.checkpoint, { repo: 'alice/retried', retry: { ...fast, retries: 2 } }));
    expect(error).toMatchObject({ kind: 'server', status: 500 });
    expect(error.message).toMatch(/the Hub kept failing while uploading to alice\/retried@main \(500, after 2 retries\)/);
    hub.clearFaults();
  });

  it('turns 401, 403, 404 and 409 into messages that say what to do, never showing the token', async () => {
    const bad = 'hf_not_a_real_token_0000000000';
    const e401 = await failure(publishLogged(run.checkpoint, { repo: 'alice/x', token: bad }));
    expect(e401).toMatchObject({ kind: 'unauthorized', status: 401 });
    expect(e401.message).toMatch(/^the Hub rejected the token from the token option while creating alice\/x \(401 Unauthorized\): it is invalid, expired or revoked; create one at http:\/\/127\.0\.0\.1:\d+\/settings\/tokens/);

    const e403 = await failure(publishLogged(run.checkpoint, { repo: 'lab/tiny', token: BOB }));
    expect(e403).toMatchObject({ kind: 'forbidden', status: 403 });
    expect(e403.message).toMatch(/^no write access to lab\/tiny while uploading to lab\/tiny@main \(403 Forbidden\): the token from the token option cannot write to 'lab'/);
    const readOnly = await failure(publishLogged(run.checkpoint, { repo: 'alice/new', token: READ_ONLY }));
    expect(readOnly.message).toMatch(/^no write access to alice\/new while creating alice\/new \(403 Forbidden\)/);

    const e404 = await failure(publishLogged(run.checkpoint, { repo: 'nobody/model' }));
    expect(e404).toMatchObject({ kind: 'not-found', status: 404 });
    expect(e404.message).toMatch(/^nobody\/model not found while creating nobody\/model \(404 Not Found\): no such repository, no namespace 'nobody'/);

    hub.failWith('POST', /\/commit\//, 409);
    const e409 = await failure(publishLogged(run.checkpoint, { repo: 'alice/tiny-lns', revision: 'experiment' }));
    expect(e409).toMatchObject({ kind: 'conflict', status: 409 });
    expect(e409.message).toMatch(/^conflicting revision for alice\/tiny-lns@experiment while uploading .*\(409\): the branch moved while uploading, or 'experiment' is not a branch/);

    // A server that echoes the Authorization header back in an error.
    hub.failWith('POST', /\/preupload\//, 400, 1, (req) => `malformed request with ${req.headers.authorization}`);
    const echoed = await failure(publishLogged(run.checkpoint, { repo: 'alice/tiny-lns' }));
    expect(echoed.message).toContain('Bearer hf_***');

    const none = await failure(publish(run.checkpoint, { repo: 'alice/x', hubUrl: hub.url, env }));
    expect(none.message).toMatch(/^publishing to alice\/x needs a token with write access: pass --token, set HF_TOKEN, or log in with `huggingface-cli login` \(token file .*hf-home\/token\)$/);
    for (const e of [e401, e403, readOnly, e404, e409, echoed, none]) expect(e.message).not.toMatch(/hf_(not_a_real|alice|bob)/);
  });

  it('takes the token from HF_TOKEN or the token file', async () => {
    const { result } = await publishLogged(run.checkpoint, { repo: 'alice/from-env', token: undefined, env: { ...env, HF_TOKEN: TOKEN } });
    expect(result.created).toBe(true);
    const home = join(root, 'hf-login');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'token'), `${BOB}\n`);
    const fromFile = await failure(publishLogged(run.checkpoint, { repo: 'alice/from-env', token: undefined, env: { HF_HOME: home } }));
    expect(fromFile.message).toContain(`the token from ${join(home, 'token')} cannot write to 'alice'`);
  });

  it('refuses a checkpoint it would publish broken, naming the file', async () => {
    const broken = await saveExport(run, join(root, 'broken'));
    const weights = readFileSync(join(broken, 'model.safetensors'));
    writeFileSync(join(broken, 'model.safetensors'), weights.subarray(0, weights.length - 8));
    expect(() => planPublish(broken, { repo: 'alice/x' })).toThrow(new RegExp(`^${join(broken, 'model.safetensors').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: tensor .*: data ends at byte \\d+ but the data section has \\d+ bytes \\(truncated file\\)$`));
    const noTokenizer = join(root, 'no-tokenizer');
    await saveExport(run, noTokenizer);
    rmSync(join(noTokenizer, 'tokenizer.json'));
    expect(() => planPublish(noTokenizer, { repo: 'alice/x' })).toThrow(/has no tokenizer\.json: a published model needs its tokenizer/);
    expect(() => planPublish(run.runDir, { repo: 'alice' })).toThrow(/'alice' is not a repository id: expected owner\/name/);
    expect(() => planPublish(join(root, 'nothing-here'), { repo: 'alice/x' })).toThrow(/not a checkpoint \(no config\.json\) nor a run folder/);
  });
});

describe('model card', () => {
  const frontMatter = (card: string) => parseYaml(/^---\n([\s\S]*?)\n---\n/.exec(card)![1]!) as Record<string, unknown>;

  it('describes a folded LNS checkpoint: front matter, architecture, training summary, diagnostics and transformers usage', async () => {
    const folded = await saveExport(run, join(root, 'folded'), { fold: true });
    const plan = planPublish(run.runDir, { repo: 'alice/tiny-folded', weightsDir: folded, card: { license: 'apache-2.0', datasets: ['alice/speeches'], schemeDescription: "each block norm's output times 1/sqrt(l)" } });
    expect(plan.files.find((f) => f.path === 'model.safetensors')!.source).toBe(join(folded, 'model.safetensors'));
    const card = plan.card;
    expect(frontMatter(card)).toEqual({
      license: 'apache-2.0',
      library_name: 'transformers',
      tags: ['deepen', 'llama', 'norm-lns', 'layernorm-scaling', 'folded'],
      datasets: ['alice/speeches'],
      pipeline_tag: 'text-generation',
    });
    const parameters = summarizeSafetensors(join(folded, 'model.safetensors')).parameters;
    expect(card).toContain(`| parameters | ${parameters.toLocaleString('en-US')} (`);
    expect(card).toContain('| layers | 3 |');
    expect(card).toContain("normalization scheme **lns** (LayerNorm Scaling, [arXiv 2502.05795](https://arxiv.org/abs/2502.05795)): each block norm's output times 1/sqrt(l).");
    expect(card).toContain('The weights here are **folded**');

    const metrics = readFileSync(join(run.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const steps = metrics.filter((m) => m.event === 'step');
    const lastEval = metrics.filter((m) => m.event === 'eval').at(-1);
    const tokens = steps.reduce((a: number, s: { tokens: number }) => a + s.tokens, 0);
    expect(card).toContain('| steps | 4 |');
    expect(tokens).toBe(4 * 2 * 16); // steps x sequences x tokens per sequence
    expect(card).toContain(`| tokens seen | ${tokens} |`);
    expect(card).toContain(`| final validation perplexity | **${lastEval.perplexity.toFixed(2)}** (loss ${lastEval.loss.toFixed(4)}, step 4, `);
    expect(card).toContain('| data | `speeches.jsonl` |');
    expect(card).not.toContain('/home/someone');
    const diagnostics = metrics.filter((m) => m.event === 'diagnostics').at(-1);
    expect(card).toContain(`Recorded during training at step ${diagnostics.step}`);
    expect(card).toContain(`| 2 | ${diagnostics.layers[2].outputVariance.toPrecision(4)} |`);
    expect(card).toContain('model = AutoModelForCausalLM.from_pretrained("alice/tiny-folded")');
    expect(card).toContain('pnpm pretrain generate hf:alice/tiny-folded --prompt "Once upon a time"');
  });

  it('says when only deepen reproduces a model, and names the Hub source of a pruned one', async () => {
    const unfolded = planPublish(run.runDir, { repo: 'alice/tiny-lns' }).card;
    expect(frontMatter(unfolded)).toMatchObject({ library_name: 'deepen', tags: ['deepen', 'llama', 'norm-lns', 'layernorm-scaling'] });
    expect(unfolded).toContain('**Only deepen reproduces this model.**');
    expect(unfolded).not.toContain('AutoModelForCausalLM');

    const pruned = applyPlan(run.model, removeLayersPlan([1], 3), { source: 'hf:alice/tiny-lns@0123456789abcdef0123456789abcdef01234567' });
    const dir = join(root, 'pruned');
    await saveExport({ ...run, model: pruned }, dir);
    pruned.dispose();
    const card = planPublish(dir, { repo: 'alice/tiny-pruned', revision: 'v1' }).card;
    expect(frontMatter(card)).toMatchObject({ tags: ['deepen', 'llama', 'norm-lns', 'layernorm-scaling', 'pruned'], base_model: 'alice/tiny-lns' });
    expect(card).toContain('After pruning, the layers keep the depths their constants were trained with: 1, 3.');
    expect(card).toContain('Pruned from [alice/tiny-lns@0123456789abcdef0123456789abcdef01234567](https://huggingface.co/alice/tiny-lns): 3 layers, of which layer 1 (0-based) was removed');
    expect(card).toContain('pnpm pretrain generate hf:alice/tiny-pruned@v1');
    expect(card).not.toContain('## Training');
  });

  it("adds the publisher's own sections after the normalization", () => {
    const card = planPublish(run.runDir, { repo: 'alice/tiny-tuned', card: { baseModel: 'alice/tiny-lns', sections: [{ heading: 'Fine-tuning', body: 'Fine-tuned from `tiny-lns` on 6 examples.\n' }] } }).card;
    expect(frontMatter(card)).toMatchObject({ base_model: 'alice/tiny-lns' });
    expect(card).toMatch(/\n## Normalization\n\n[^#]*\n\n## Fine-tuning\n\nFine-tuned from `tiny-lns` on 6 examples\.\n\n## Training\n/);
  });
});

describe('download', () => {
  const cache = () => mkdtempSync(join(root, 'cache-'));
  const read = (repo: string, options: Parameters<typeof download>[1] = {}) => download(repo, { hubUrl: hub.url, env, retry: fast, ...options });

  it('fetches a checkpoint into the cache, verified, and reuses it', async () => {
    await publishLogged(run.runDir, { repo: 'alice/public' });
    const cacheDir = cache();
    const commit = hub.commits('alice/public')[0]!.oid;
    const dir = await read('alice/public', { cacheDir });
    expect(dir).toBe(join(repoCacheDir(cacheDir, 'alice/public'), 'snapshots', commit));
    expect(readdirSync(dir).sort()).toEqual(['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    for (const [path, content] of hub.files('alice/public')) if (path !== '.gitattributes') expect(bytes(dir, path).equals(content), path).toBe(true);
    expect(readFileSync(join(repoCacheDir(cacheDir, 'alice/public'), 'refs', 'main'), 'utf8')).toBe(commit);
    loadCheckpoint(dir).dispose();

    const before = hub.requests.length;
    expect(await read('alice/public', { cacheDir })).toBe(dir);
    expect(hub.requests.slice(before).map((r) => r.path)).toEqual(['/api/models/alice/public/revision/main']); // where main points, nothing more
    expect(await read('alice/public', { cacheDir, revision: commit })).toBe(dir);
    expect(await read('alice/public', { cacheDir, env: { ...env, HF_HUB_OFFLINE: '1' } })).toBe(dir);
    expect(hub.requests.length).toBe(before + 1);
    const warnings: string[] = [];
    expect(await read('alice/public', { cacheDir, hubUrl: 'http://127.0.0.1:1', retry: { retries: 1, baseDelayMs: 1 }, onWarning: (w) => warnings.push(w) })).toBe(dir);
    expect(warnings[0]).toMatch(/^cannot reach http:\/\/127\.0\.0\.1:1 .*; using the cached hf:alice\/public@main/);
    await expect(read('alice/other', { cacheDir, offline: true })).rejects.toThrow(/hf:alice\/other@main is not in the cache .* downloads are off/);
  });

  it('fetches only the shards the index names, and private repositories with a token', async () => {
    const noToken = await failure(read('alice/tiny-lns', { cacheDir: cache() }));
    expect(noToken.message).toMatch(/^alice\/tiny-lns not found while looking up hf:alice\/tiny-lns@main \(404 Not Found\): .*private/);
    const dir = await read('alice/tiny-lns', { cacheDir: cache(), token: READ_ONLY });
    const sharded = join(root, 'sharded');
    expect(readdirSync(dir).filter((f) => f.includes('safetensors')).sort()).toEqual(readdirSync(sharded).filter((f) => f.includes('safetensors')).sort());
    const experiment = await read('alice/tiny-lns', { cacheDir: cache(), env: { ...env, HF_TOKEN: READ_ONLY }, revision: 'experiment' });
    expect(bytes(experiment, 'model.safetensors').equals(bytes(run.checkpoint, 'model.safetensors'))).toBe(true);
    const missing = await failure(read('alice/public', { cacheDir: cache(), revision: 'v9' }));
    expect(missing.message).toMatch(/^alice\/public@v9 not found while looking up hf:alice\/public@v9 \(404 Not Found\): no such repository or revision/);
  });

  it('never leaves a partial snapshot in the cache, and retries a connection dropped mid-file', async () => {
    const cacheDir = cache();
    const repoDir = repoCacheDir(cacheDir, 'alice/public');
    hub.reset('GET', /\/resolve\/.*\/model\.safetensors$/, 'mid-body', 10);
    const error = await failure(read('alice/public', { cacheDir, retry: { ...fast, retries: 1 } }));
    expect(error).toMatchObject({ kind: 'network' });
    expect(error.message).toMatch(/downloading model\.safetensors of hf:alice\/public@main/);
    expect(readdirSync(join(repoDir, 'snapshots'))).toEqual([]); // neither a snapshot nor the scratch folder it was built in
    hub.clearFaults();

    hub.reset('GET', /\/resolve\/.*\/model\.safetensors$/, 'mid-body', 1);
    const retries: RetryNotice[] = [];
    const dir = await read('alice/public', { cacheDir, onRetry: (r) => retries.push(r) });
    expect(retries).toHaveLength(1);
    expect(bytes(dir, 'model.safetensors').equals(hub.files('alice/public').get('model.safetensors')!)).toBe(true);
  });

  it('refuses content that does not match the Hub\'s hashes', async () => {
    await publishLogged(run.checkpoint, { repo: 'alice/tampered' });
    hub.tamper('alice/tampered', 'model.safetensors');
    const cacheDir = cache();
    const error = await failure(read('alice/tampered', { cacheDir }));
    expect(error.message).toMatch(/model\.safetensors: content does not match the Hub's sha256/);
    expect(readdirSync(join(repoCacheDir(cacheDir, 'alice/tampered'), 'snapshots'))).toEqual([]);
  });
});
