import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ENGINE_ORDER, initBackend, nativeEngineStatus } from '@deepen/backend';
import { parseSafetensors, readRunRecord } from '@deepen/core';
import { loadCheckpoint, saveCheckpoint } from '@deepen/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliArgs, cliRunner } from './cli-runner.js';
// The loopback Hub that @deepen/hub's own tests run against.
import { FakeHub } from '@deepen/hub/testing';

const { root, env, run, runAsync } = cliRunner('deepen-cli-');
const data = join(root, 'data.jsonl');

/** A tiny, fast, deterministic run on the cpu engine. */
const TINY = ['--data', data, '--preset', 'tiny', '--vocab-size', '300', '--seq-len', '16', '--batch-size', '2', '--eval-tokens', '64', '--backend', 'cpu', '--warmup', '1'];

// Skipped only where this machine cannot build the native engine by design (no compiler or OpenBLAS).
const native = nativeEngineStatus();
const nativeSkipped = !native.available && native.expected;
const nativeSkipReason = native.available ? '' : ` (skipped: ${native.reason})`;

const events = (stdout: string) => stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown> & { event: string });

beforeAll(() => {
  const lines = Array.from({ length: 80 }, (_, i) => JSON.stringify({ text: `Speech number ${i}: the people of the union ask for peace, trade and ${i % 7} new roads across the states.` }));
  writeFileSync(data, `${lines.join('\n')}\n`);
  writeFileSync(join(root, 'bad-line.jsonl'), `${lines[0]}\n{"text": "cut short\n`);
  writeFileSync(join(root, 'no-text.jsonl'), '{"body": "the text is under another name"}\n');
});

describe('pretrain flag errors name the flag and exit 2', () => {
  const cases: Array<[string[], RegExp]> = [
    [['train', '--stepz', '3'], /unknown flag --stepz/],
    [['train', '--steps', 'abc'], /--steps must be a number, got 'abc'/],
    [['train', '--steps', '1.5'], /--steps must be an integer, got '1.5'/],
    [['train', '--lr', '0'], /--lr must be greater than 0, got 0/],
    [['train', '--schedule', 'step'], /--schedule must be one of cosine, linear, constant, wsd, got 'step'/],
    [['train', '--norm', 'lnss'], /--norm: unknown normalization scheme 'lnss'; known: pre, post/],
    [['train', '--preset', '7b'], /--preset must be one of tiny, small, 9m/],
    [['train', '--quiet', '--json'], /--quiet and --json cannot be combined/],
    [['train', '--batch-size', '4', '--total-batch-size', '6'], /--total-batch-size \(6\) must be a multiple of --batch-size \(4\)/],
    [['train', '--steps'], /--steps needs a value/],
    [['train', '--backend', 'tpu'], /--backend: unknown engine 'tpu'/],
    [['train', 'extra'], /unexpected argument 'extra'/],
    [['compare', '--norms', 'pre,pre'], /--norms lists a scheme twice/],
    [['eval'], /eval needs a checkpoint or run folder/],
    [['eval', 'hf:alice'], /'hf:alice': 'alice' is not a repository id: expected owner\/name/],
    [['train', '--resume', 'hf:alice/model'], /--resume needs the local run folder \(or one of its checkpoints\): a published checkpoint has no optimizer/],
    [['publish'], /publish needs a run or checkpoint folder/],
    [['publish', '.'], /--repo is required/],
    [['publish', '.', '--repo', 'alice'], /--repo: 'alice' is not a repository id: expected owner\/name/],
    [['publish', '.', '--repo', 'alice/m', '--base-model', 'a--b/c'], /--base-model: 'a--b\/c' is not a valid repository id/],
    [['publish', '.', '--repo', 'alice/m', '--out', 'x'], /--out names the --dry-run folder/],
    [['publish', 'nope', '--repo', 'alice/m'], /nope: not a checkpoint \(no config\.json\) nor a run folder/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    // Mistakes in the files a flag names exit 2 as well, naming the file (and line).
    // (Paths relative to the folder the CLI runs in.)
    [['train', '--data', 'missing.jsonl', '--backend', 'cpu'], /missing\.jsonl: no such file or directory/],
    [['train', '--data', 'bad-line.jsonl', '--backend', 'cpu'], /bad-line\.jsonl:2: not valid JSON/],
    [['train', '--data', 'no-text.jsonl', '--backend', 'cpu'], /no-text\.jsonl:1: no string field 'text' \(fields: body\)/],
    [['train', '--data', 'data.jsonl', '--tokenizer', 'nope.json', '--backend', 'cpu'], /--tokenizer: .*nope\.json: tokenizer file not found/],
  ];
  for (const [args, message] of cases) {
    it(args.join(' '), () => {
      const r = run(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }

  it('prints help for every command', () => {
    for (const command of ['train', 'compare', 'eval', 'generate', 'info', 'analyze', 'prune', 'export', 'publish']) {
      const r = run([command, '--help']);
      expect(r.code, command).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`Usage:\\n  pretrain ${command}`));
    }
    expect(run(['train', '--help']).stdout).toMatch(/--total-batch-size N/);
  });

  it('lists every engine under --backend, native included', () => {
    const help = run(['train', '--help']).stdout.replace(/\s+/g, ' ');
    expect(ENGINE_ORDER).toContain('native');
    expect(help).toContain(`auto, ${ENGINE_ORDER.join(', ')}`);
  });
});

describe('pretrain train', () => {
  it('trains end to end: events, metrics.jsonl, run.json and a loadable checkpoint', () => {
    const out = join(root, 'run-a');
    const r = run(['train', ...TINY, '--steps', '4', '--eval-every', '2', '--save-every', '2', '--diagnostics-every', '2', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const ev = events(r.stdout);
    expect(ev.filter((e) => e.event === 'step').map((e) => e.step)).toEqual([1, 2, 3, 4]);
    expect(ev.filter((e) => e.event === 'eval').map((e) => e.step)).toEqual([2, 4]);
    expect(ev.filter((e) => e.event === 'diagnostics')[0]!.layers).toHaveLength(3);
    const summary = ev.at(-1)!;
    expect(summary).toMatchObject({ event: 'summary', reason: 'completed', step: 4 });
    expect(summary.validationPerplexity).toBeCloseTo(Math.exp(summary.validationLoss as number), 6);
    expect(readdirSync(join(out, 'checkpoints'))).toEqual(['step-0000002', 'step-0000004']);
    expect(readdirSync(join(out, 'checkpoints', 'step-0000004')).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'optimizer.safetensors', 'tokenizer.json', 'trainer_state.json']);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.filter((m) => m.event === 'step')).toHaveLength(4);
    expect(readRunRecord(out)!.settings).toMatchObject({ preset: 'tiny', norm: 'lns', steps: 4 });

    const again = run(['train', ...TINY, '--steps', '4', '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already holds files; pass --resume/);
  });

  it.skipIf(nativeSkipped)(`trains, evaluates and generates on the native engine${nativeSkipReason}`, () => {
    const out = join(root, 'run-native');
    const r = run(['train', ...TINY.filter((a) => a !== 'cpu' && a !== '--backend'), '--backend', 'native', '--steps', '4', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^engine: native \(CPU: .*threads?, SIMD\)$/m);
    expect(r.stdout).toMatch(/final validation perplexity \d+\.\d+ \(loss \d+\.\d+\) after 4 steps/);
    const ev = run(['eval', out, '--data', data, '--seq-len', '16', '--max-tokens', '256', '--json', '--backend', 'native']);
    expect(ev.code, ev.stderr).toBe(0);
    const onCpu = run(['eval', out, '--data', data, '--seq-len', '16', '--max-tokens', '256', '--json', '--backend', 'cpu']);
    // The same checkpoint scored by both engines: the fused kernels compute what tf.* computes.
    expect(JSON.parse(ev.stdout).loss).toBeCloseTo(JSON.parse(onCpu.stdout).loss, 4);
    const gen = run(['generate', out, '--prompt', 'Speech number', '--max-tokens', '6', '--backend', 'native']);
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stdout).toMatch(/^Speech number/);
  });

  it('resumes to the same loss curve as an uninterrupted run, and refuses changed settings', () => {
    const full = run(['train', ...TINY, '--steps', '5', '--out', join(root, 'full'), '--json']);
    expect(full.code, full.stderr).toBe(0);
    const part = run(['train', ...TINY, '--steps', '3', '--out', join(root, 'part'), '--json']);
    expect(part.code, part.stderr).toBe(0);
    const refused = run(['train', '--resume', join(root, 'part'), '--lr', '1e-2']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--lr cannot change when resuming/);
    const resumed = run(['train', '--resume', join(root, 'part'), '--steps', '5', '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
    // The engine starts before the checkpoint's weights load: no tfjs "install the node backend" banner.
    expect(resumed.stdout + resumed.stderr).not.toMatch(/TensorFlow\.js in Node\.js|node backend/);
    // Resumed again with nothing left to do: says so, with the checkpoint and the last evaluation.
    const finished = run(['train', '--resume', join(root, 'part')]);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stdout + finished.stderr).not.toMatch(/TensorFlow\.js in Node\.js|node backend|null/);
    expect(finished.stdout).toMatch(/^nothing to do: the run already finished its 5 steps \(a larger --steps trains further\); last evaluation at step 5: perplexity \d+\.\d+ \(loss \d+\.\d+\); checkpoint .*part\/checkpoints\/step-0000005$/m);
    expect(finished.stdout).not.toMatch(/^step /m);
    const losses = (stdout: string) => events(stdout).filter((e) => e.event === 'step').map((e) => e.loss);
    // The 3-step run's schedule differs (cosine over 3 steps), so compare against a run that
    // was always meant to be 5 steps: resume that one instead.
    const full5 = run(['train', ...TINY, '--steps', '5', '--save-every', '2', '--out', join(root, 'full5'), '--json']);
    const resumed5 = run(['train', '--resume', join(root, 'full5', 'checkpoints', 'step-0000002'), '--json']);
    expect(resumed5.code, resumed5.stderr).toBe(0);
    expect(losses(resumed5.stdout)).toEqual(losses(full5.stdout).slice(2));
    expect(losses(full.stdout)).toEqual(losses(full5.stdout));
    const metrics = readFileSync(join(root, 'full5', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics.filter((m) => m.event === 'step').map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);
    expect(losses(resumed.stdout)).toHaveLength(2);
  });

  it('saves a checkpoint and exits 130 on SIGINT', async () => {
    const out = join(root, 'interrupted');
    const child = spawn(process.execPath, cliArgs(['train', ...TINY, '--steps', '100000', '--out', out, '--json']), { cwd: root, env });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!sent && stdout.includes('"event":"step"')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    const done = events(stdout).find((e) => e.event === 'done');
    expect(done).toMatchObject({ reason: 'interrupted' });
    expect(existsSync(join(done!.checkpoint as string, 'trainer_state.json'))).toBe(true);
    // The message names the step the checkpoint holds.
    const promised = Number(/SIGINT: stopping after step (\d+), saving its checkpoint/.exec(stderr)?.[1]);
    expect(promised, stderr).toBe(done!.step);
    expect(JSON.parse(readFileSync(join(done!.checkpoint as string, 'trainer_state.json'), 'utf8')).step).toBe(promised);
    const resumed = run(['train', '--resume', out, '--steps', String((done!.step as number) + 1), '--json']);
    expect(resumed.code, resumed.stderr).toBe(0);
  });
});

describe('pretrain eval, generate, info and compare', () => {
  it('work on a trained checkpoint', () => {
    const out = join(root, 'for-eval');
    expect(run(['train', ...TINY, '--steps', '2', '--out', out, '--quiet']).code).toBe(0);
    const ckpt = join(out, 'checkpoints', 'step-0000002');
    const ev = run(['eval', ckpt, '--data', data, '--seq-len', '16', '--max-tokens', '256', '--json', '--backend', 'cpu']);
    expect(ev.code, ev.stderr).toBe(0);
    const result = JSON.parse(ev.stdout);
    expect(result.tokens).toBe(256);
    expect(result.perplexity).toBeCloseTo(Math.exp(result.loss), 6);
    const gen = run(['generate', ckpt, '--prompt', 'Speech number', '--max-tokens', '8', '--backend', 'cpu']);
    expect(gen.code, gen.stderr).toBe(0);
    expect(gen.stdout.startsWith('Speech number')).toBe(true);
    const info = run(['info', ckpt, '--json', '--backend', 'cpu']);
    expect(JSON.parse(info.stdout)).toMatchObject({ scheme: 'lns', config: { num_hidden_layers: 3, vocab_size: 300 } });
    const missing = run(['eval', join(root, 'nope'), '--backend', 'cpu']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope: not a checkpoint \(no config\.json\) nor a run folder with checkpoints\//);
    const viaRun = run(['eval', out, '--data', data, '--seq-len', '16', '--max-tokens', '256', '--json', '--backend', 'cpu']);
    expect(JSON.parse(viaRun.stdout).loss).toBe(result.loss); // a run folder means its newest checkpoint
  });

  it('analyze reports two checkpoints side by side; prune removes and heals', () => {
    const runs = ['pre', 'lns'].map((norm) => {
      const out = join(root, `analyze-${norm}`);
      expect(run(['train', ...TINY, '--norm', norm, '--steps', '2', '--out', out, '--quiet']).code).toBe(0);
      return out;
    });
    const report = join(root, 'analysis');
    const a = run(['analyze', ...runs, '--data', data, '--max-tokens', '200', '--window', '16', '--cloze-items', '5', '--backend', 'cpu', '--out', report]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/^analyze-pre\s+pre\s+\d+\.\d+/m);
    expect(a.stdout).toMatch(/^analyze-lns\s+lns\s+\d+\.\d+/m);
    const json = JSON.parse(readFileSync(join(report, 'report.json'), 'utf8'));
    expect(json.entries.map((e: { name: string }) => e.name)).toEqual(['analyze-pre', 'analyze-lns']);
    expect(json.entries[0].result.removal).toHaveLength(3);
    for (const f of ['variance', 'block-influence', 'removal-perplexity', 'angular-analyze-pre', 'angular-analyze-lns']) {
      expect(existsSync(join(report, `${f}.png`)), f).toBe(true);
    }
    const card = join(root, 'card');
    const dry = run(['publish', runs[1]!, '--repo', 'alice/analyzed', '--dry-run', '--out', card, '--report', report, '--no-fold', '--license', 'mit']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^ {2}README\.md +\d+\.\d KiB {2}\(generated\)$/m);
    const readme = readFileSync(join(card, 'README.md'), 'utf8');
    expect(readme).toMatch(/^---\nlicense: mit\nlibrary_name: deepen\n/);
    expect(readme).toMatch(/Measured with `pretrain analyze`: perplexity \d+\.\d+ on \d+ held-out tokens\. Per layer, over \d+ tokens/);
    const bi = json.entries[1].result.depth.layers[2].blockInfluence.toFixed(4);
    expect(readme).toMatch(new RegExp(`^\\| 2 \\| 3 \\| [^|]+ \\| ${bi} \\| \\d+\\.\\d+ \\([+-]\\d+\\.\\d+\\) \\|$`, 'm'));
    expect(readdirSync(card).sort()).toEqual(['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);

    const pruned = join(root, 'pruned');
    const p = run(['prune', runs[1]!, '--plan', 'layers:1', '--heal-steps', '2', '--heal-data', data, '--data', data, '--max-tokens', '200', '--window', '16', '--cloze-items', '0', '--backend', 'cpu', '--out', pruned]);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/^original\s+3\s+\d/m);
    expect(p.stdout).toMatch(/^healed\s+2\s+\d/m);
    const config = JSON.parse(readFileSync(join(pruned, 'config.json'), 'utf8'));
    expect(config.num_hidden_layers).toBe(2);
    expect(config.deepen).toMatchObject({ norm_scheme: 'lns', layer_depths: [1, 3], pruned: { removed_layers: [1], depths: 'keep' } });
    expect(JSON.parse(readFileSync(join(pruned, 'prune_report.json'), 'utf8')).healSteps).toBe(2);
    const bad = run(['prune', runs[1]!, '--plan', 'layers:7', '--out', join(root, 'bad-prune'), '--data', data, '--max-tokens', '200', '--window', '16', '--cloze-items', '0', '--backend', 'cpu']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--plan layers:7: layer 7 is outside 0..2/);
    expect(run(['prune', runs[1]!, '--plan', 'chop:1', '--out', join(root, 'bad2')]).stderr).toMatch(/--plan must be layers:I,J \| bi:K \| angular:N/);
  });

  it('compare writes a report with a table, charts and raw JSON', () => {
    const out = join(root, 'compare');
    mkdirSync(out);
    const r = run(['compare', '--norms', 'pre,lns', ...TINY, '--steps', '3', '--diagnostics-every', '3', '--out', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pre\s+\d+\.\d+\s+\d+\.\d+$/m);
    expect(r.stdout).toMatch(/^lns\s+\d+\.\d+\s+\d+\.\d+$/m);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report.results.map((x: { norm: string }) => x.norm)).toEqual(['pre', 'lns']);
    expect(report.runs[1].diagnostics[0].layers).toHaveLength(3);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect(html).toMatch(/<td>lns<\/td><td>\d+\.\d+<\/td>/);
    for (const f of ['loss.svg', 'eval.svg', 'variance.svg']) expect(readFileSync(join(out, f), 'utf8')).toMatch(/^<svg xmlns/);
    for (const f of ['loss.png', 'eval.png', 'variance.png']) {
      const png = readFileSync(join(out, f));
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1280, 720]); // IHDR: the 640x360 chart at 2x
    }
  });
});

describe('pretrain publish keeps the stored precision', () => {
  it('folds a sharded BF16 checkpoint into BF16 weights, and config.json says bfloat16', async () => {
    const out = join(root, 'to-publish-bf16');
    expect(run(['train', ...TINY, '--steps', '1', '--out', out, '--quiet']).code).toBe(0);
    const ckpt = join(out, 'checkpoints', 'step-0000001');
    // The same checkpoint stored as BF16 in several shards.
    await initBackend({ engine: 'cpu' });
    const model = loadCheckpoint(ckpt);
    const bf16 = join(root, 'bf16-sharded');
    await saveCheckpoint(model, bf16, { dtype: 'BF16', maxShardBytes: 16_384, files: { 'tokenizer.json': readFileSync(join(ckpt, 'tokenizer.json')) } });
    model.dispose();
    const dtypesIn = (dir: string) =>
      readdirSync(dir)
        .filter((f) => f.endsWith('.safetensors'))
        .flatMap((f) => [...parseSafetensors(readFileSync(join(dir, f)), f).tensors.values()].map((t) => t.dtype));
    expect(readdirSync(bf16)).toContain('model.safetensors.index.json');
    expect(new Set(dtypesIn(bf16))).toEqual(new Set(['BF16']));
    expect(JSON.parse(readFileSync(join(bf16, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');

    const card = join(root, 'bf16-card');
    const dry = run(['publish', bf16, '--repo', 'alice/bf16', '--dry-run', '--out', card, '--backend', 'cpu']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^folded 'lns' into a plain Pre-LN LLaMA/m);
    expect(new Set(dtypesIn(card))).toEqual(new Set(['BF16']));
    expect(JSON.parse(readFileSync(join(card, 'config.json'), 'utf8'))).toMatchObject({ torch_dtype: 'bfloat16', deepen: { folded_from: 'lns' } });
    expect(readFileSync(join(card, 'README.md'), 'utf8')).toMatch(/BF16 safetensors/);
  });
});

describe('pretrain publish and hf: checkpoints', () => {
  const TOKEN = 'hf_cli_writer_Zq81LmN3vX5cR7';
  let hub: FakeHub;
  beforeAll(async () => {
    hub = await new FakeHub({ users: { [TOKEN]: { name: 'alice' } } }).start();
  });
  afterAll(() => hub.close());

  it('publishes an LNS run folded into a plain LLaMA, and eval and info read it back through hf:', async () => {
    const out = join(root, 'to-publish');
    expect(run(['train', ...TINY, '--steps', '2', '--out', out, '--quiet']).code).toBe(0);
    const published = await runAsync(['publish', out, '--repo', 'alice/cli-lns', '--backend', 'cpu'], { HF_TOKEN: TOKEN, HF_ENDPOINT: hub.url });
    expect(published.code, published.stderr).toBe(0);
    expect(published.stdout).toMatch(/^folded 'lns' into a plain Pre-LN LLaMA/m);
    expect(published.stdout).toMatch(/^publishing to-publish\/checkpoints\/step-0000002 to alice\/cli-lns \(token from \$HF_TOKEN\)$/m);
    expect(published.stdout).toMatch(/^uploaded model\.safetensors \(\d+\.\d KiB\)$/m);
    expect(published.stdout).toMatch(/^committed [0-9a-f]{12}: http:\/\/127\.0\.0\.1:\d+\/alice\/cli-lns$/m);
    expect(published.stdout + published.stderr).not.toContain(TOKEN);
    const files = hub.files('alice/cli-lns');
    expect(JSON.parse(files.get('config.json')!.toString()).deepen).toMatchObject({ norm_scheme: 'pre', folded_from: 'lns' });
    expect(files.get('README.md')!.toString()).toContain('model = AutoModelForCausalLM.from_pretrained("alice/cli-lns")');
    expect(files.has('optimizer.safetensors') || files.has('trainer_state.json')).toBe(false);

    // The folded upload computes what the trained model computes.
    const evalArgs = ['--data', data, '--seq-len', '16', '--max-tokens', '256', '--json', '--backend', 'cpu'];
    const local = run(['eval', out, ...evalArgs]);
    const remote = await runAsync(['eval', 'hf:alice/cli-lns', ...evalArgs], { HF_ENDPOINT: hub.url });
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.stderr).toMatch(/^downloaded alice\/cli-lns: model\.safetensors/m);
    expect(JSON.parse(remote.stdout).loss).toBeCloseTo(JSON.parse(local.stdout).loss, 5);
    const info = await runAsync(['info', 'hf:alice/cli-lns@main', '--json', '--backend', 'cpu'], { HF_ENDPOINT: hub.url });
    expect(info.code, info.stderr).toBe(0);
    expect(info.stderr).not.toMatch(/downloaded/); // the cached copy
    expect(JSON.parse(info.stdout)).toMatchObject({ scheme: 'pre', config: { num_hidden_layers: 3, deepen: { folded_from: 'lns' } } });

    const wrong = 'hf_wrong_cli_token_0000000000';
    const refused = await runAsync(['publish', out, '--repo', 'alice/cli-lns', '--no-fold', '--token', wrong, '--hub-url', hub.url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^pretrain publish: the Hub rejected the token from --token while creating alice\/cli-lns \(401 Unauthorized\)/);
    expect(refused.stdout + refused.stderr).not.toContain(wrong);
    const missing = await runAsync(['eval', 'hf:alice/no-such-model', ...evalArgs], { HF_ENDPOINT: hub.url });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/alice\/no-such-model not found while looking up hf:alice\/no-such-model@main \(404 Not Found\)/);
  });
});
