import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { formatBytes, publish, publishToken, validateRepoId, type PublishProgress } from '@deepen/hub';
import { locateCheckpoint } from '@deepen/core';
import { loadCheckpoint, readCheckpointConfig, saveCheckpoint, schemeOf, type LlamaConfig } from '@deepen/models';
import { knownSchemeParts } from '@deepen/norms';
import { exportGguf, GGUF_DTYPES, GgufError, isGgufPath, type GgufDtype } from '@deepen/gguf';
import { Tokenizer } from '@deepen/data';
import { checkpointDir, storedDtype } from '../checkpoints.js';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import { asFlagError, ENGINE_FLAGS, startEngine } from '../setup.js';

const FLAGS: Record<string, FlagSpec> = {
  repo: { type: 'string', value: 'OWNER/NAME', description: 'Hub model repository to publish to (created if missing)' },
  private: { type: 'bool', description: 'create the repository private (an existing one keeps its visibility)' },
  'dry-run': { type: 'bool', description: 'write the exact folder that would be uploaded (see --out), upload nothing' },
  out: { type: 'string', value: 'DIR', description: 'dry-run folder (default runs/publish-<name>-<time>)' },
  token: { type: 'string', value: 'TOKEN', description: 'access token with write permission (default: $HF_TOKEN, else the token file of `huggingface-cli login`; prefer those, a flag shows in the process list)' },
  revision: { type: 'string', value: 'BRANCH', description: 'branch to commit to, created from main if missing (default main)' },
  message: { type: 'string', value: 'TEXT', description: 'commit message' },
  'hub-url': { type: 'string', value: 'URL', description: 'the Hub to publish to (default: $HF_ENDPOINT, else https://huggingface.co)' },
  license: { type: 'string', value: 'ID', default: 'other', description: 'license id for the model card, e.g. mit, apache-2.0' },
  datasets: { type: 'list', value: 'IDS', description: 'Hub dataset ids the model was trained on, for the model card' },
  'base-model': { type: 'string', value: 'OWNER/NAME', description: 'the Hub model this one derives from (default: the hf: source of a pruned checkpoint)' },
  report: { type: 'string', value: 'PATH', description: "a pretrain analyze report (folder or report.json) covering this checkpoint, for the card's depth diagnostics" },
  'no-fold': { type: 'bool', description: "publish LNS / LayerScale / SkipInit weights as deepen stores them instead of folded into a plain LLaMA (then only deepen reproduces the model)" },
  gguf: { type: 'list', value: 'TYPES', description: `also publish GGUF files for llama.cpp / Ollama / LM Studio, one per precision: ${GGUF_DTYPES.join(', ')} (e.g. f16,q8_0); listed on the model card` },
  ...ENGINE_FLAGS,
};

const HELP = helpText(
  'pretrain publish RUN_DIR --repo OWNER/NAME [--private] [--dry-run] [--gguf f16,q8_0] [options]',
  'Publish a checkpoint (a run folder means its newest one, a .gguf file is imported first) to the Hugging Face Hub: config.json, safetensors weights, tokenizer and a generated model card, and with --gguf the same model as GGUF files. Optimizer and trainer state stay local. Schemes that fold (lns, layerscale, skipinit) are published as a plain Pre-LN LLaMA that transformers loads.',
  FLAGS,
);

/** The registry's one-line description of each part of a scheme name such as lns+scaled. */
function describeScheme(name: string): string | undefined {
  const parts = new Map(knownSchemeParts().map((p) => [p.name, p.description]));
  const described = name.split('+').map((p) => parts.get(p));
  return described.every(Boolean) ? described.join('; ') : undefined;
}

/** Prints one line per file as its upload passes each quarter, then once it is stored. */
function progressPrinter(log: (line: string) => void): (event: PublishProgress) => void {
  const printed = new Map<string, number>();
  return (event) => {
    if (event.kind === 'phase') {
      if (event.phase === 'committing') log('committing');
      return;
    }
    if (event.state !== 'uploading') return;
    const quarter = Math.floor(event.fraction * 4);
    if (quarter <= (printed.get(event.path) ?? -1)) return;
    printed.set(event.path, quarter);
    log(quarter >= 4 ? `uploaded ${event.path} (${formatBytes(event.size)})` : `uploading ${event.path}: ${quarter * 25}% of ${formatBytes(event.size)}`);
  };
}

export async function publishCommand(argv: string[]): Promise<number> {
  const { values, positionals, given } = parseFlags('publish', argv, FLAGS, 1);
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!positionals[0]) throw new UsageError('publish needs a run or checkpoint folder, e.g. pretrain publish runs/<run> --repo you/model');
  if (values.repo === undefined) throw new UsageError('--repo is required (owner/name of the Hub model repository)');
  for (const flag of ['repo', 'base-model'] as const) {
    if (values[flag] !== undefined) asFlagError(flag, () => validateRepoId(String(values[flag])));
  }
  if (given.has('out') && !values['dry-run']) throw new UsageError('--out names the --dry-run folder; add --dry-run, or leave --out out');
  const dryRun = values['dry-run'] === true;
  const repo = String(values.repo);
  const outDir = resolve(values.out === undefined ? join('runs', `publish-${repo.split('/')[1]}-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')}`) : String(values.out));
  if (dryRun && existsSync(outDir) && readdirSync(outDir).length > 0) throw new UsageError(`--out ${outDir} already holds files; choose another --out`);
  const ggufTypes = ((values.gguf as string[] | undefined) ?? []).map((t) => t.toLowerCase());
  for (const t of ggufTypes) if (!(GGUF_DTYPES as readonly string[]).includes(t)) throw new UsageError(`--gguf: '${t}' is not a GGUF precision deepen writes (${GGUF_DTYPES.join(', ')})`);
  if (new Set(ggufTypes).size !== ggufTypes.length) throw new UsageError(`--gguf lists a precision twice: ${ggufTypes.join(',')}`);
  let location;
  try {
    location = locateCheckpoint(isGgufPath(positionals[0]) ? await checkpointDir(positionals[0]) : positionals[0]);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError((error as Error).message);
  }
  // Find a missing or malformed token before minutes of folding, never echoing it.
  let token = null;
  try {
    token = dryRun ? null : publishToken(repo, values.token === undefined ? undefined : { value: String(values.token), source: '--token' });
  } catch (error) {
    if (values.token !== undefined) throw new UsageError((error as Error).message);
    throw error;
  }
  const log = (line: string) => process.stdout.write(`${line}\n`);

  let config: LlamaConfig;
  try {
    config = readCheckpointConfig(location.dir);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const scheme = schemeOf(config);
  if (ggufTypes.length > 0 && !scheme.foldable) throw new UsageError(`--gguf: norm scheme '${scheme.name}' has no plain Pre-LN equivalent, so llama.cpp cannot run it`);
  const fold = config.deepen.stock_runtime_compatible !== true && scheme.foldable && values['no-fold'] !== true;
  let staging: string | null = null;
  try {
    let weightsDir: string | undefined;
    const gguf: Array<{ path: string; source: string; dtype: string }> = [];
    // Folding and the GGUF files both need the model: it is loaded once for both.
    const needsModel = fold || ggufTypes.length > 0;
    if (needsModel) {
      await startEngine(values, log);
      staging = mkdtempSync(join(tmpdir(), 'deepen-publish-'));
    }
    const model = needsModel ? loadCheckpoint(location.dir) : null;
    try {
      if (model && fold) {
        weightsDir = join(staging as string, 'folded');
        // Keep the precision the checkpoint was stored in.
        await saveCheckpoint(model, weightsDir, { fold: true, dtype: storedDtype(location.dir) });
        log(`folded '${scheme.name}' into a plain Pre-LN LLaMA (same outputs; stock runtimes load it)`);
      } else if (config.deepen.stock_runtime_compatible !== true && !scheme.foldable) {
        log(`'${scheme.name}' has no Pre-LN equivalent: the weights go up as deepen stores them, and only deepen reproduces the model`);
      }
      if (model && ggufTypes.length > 0) {
        const tokenizer = Tokenizer.fromDir(location.dir);
        const base = repo.split('/')[1] as string;
        for (const dtype of ggufTypes) {
          const file = `${base}-${dtype.toUpperCase()}.gguf`;
          const source = join(staging as string, file);
          try {
            const result = await exportGguf(model, tokenizer, source, { dtype: dtype as GgufDtype, name: base });
            for (const w of result.warnings) log(`note: ${w}`);
          } catch (error) {
            if (error instanceof GgufError) throw new UsageError(`--gguf ${dtype}: ${error.message}`);
            throw error;
          }
          gguf.push({ path: file, source, dtype });
          log(`wrote ${file} for llama.cpp`);
        }
      }
    } finally {
      model?.dispose();
    }
    const where = relative(process.cwd(), location.dir) || '.';
    log(`${dryRun ? 'dry run: would publish' : 'publishing'} ${where} to ${repo}${values.revision !== undefined ? `@${values.revision}` : ''}${token ? ` (token from ${token.source})` : ''}`);
    const schemeDescription = describeScheme(scheme.name);
    const result = await publish(location.dir, {
      repo,
      ...(token ? { token } : {}),
      ...(values.private ? { private: true } : {}),
      ...(values.revision !== undefined ? { revision: String(values.revision) } : {}),
      ...(values.message !== undefined ? { commitMessage: String(values.message) } : {}),
      ...(values['hub-url'] !== undefined ? { hubUrl: String(values['hub-url']) } : {}),
      ...(weightsDir ? { weightsDir } : {}),
      ...(values.report !== undefined ? { report: String(values.report) } : {}),
      ...(gguf.length > 0 ? { gguf } : {}),
      ...(dryRun ? { dryRun: outDir } : {}),
      card: {
        license: String(values.license),
        ...(values.datasets ? { datasets: values.datasets as string[] } : {}),
        ...(values['base-model'] !== undefined ? { baseModel: String(values['base-model']) } : {}),
        ...(schemeDescription ? { schemeDescription } : {}),
      },
      onProgress: progressPrinter(log),
      onRetry: (r) => log(`retrying ${r.request} in ${(r.delayMs / 1000).toFixed(1)}s (${r.reason}, attempt ${r.attempt + 1})`),
    });
    const width = Math.max(...result.files.map((f) => f.path.length));
    for (const f of result.files) log(`  ${f.path.padEnd(width)}  ${formatBytes(f.size).padStart(10)}${f.source === null ? '  (generated)' : ''}`);
    log(`  ${'total'.padEnd(width)}  ${formatBytes(result.files.reduce((a, f) => a + f.size, 0)).padStart(10)}`);
    if (result.commit === null) {
      log(`wrote ${result.files.length} files to ${result.url}; nothing was uploaded`);
    } else {
      if (result.created) log(`created ${values.private ? 'private' : 'public'} repository ${repo}`);
      if (result.deleted.length > 0) log(`deleted stale weights: ${result.deleted.join(', ')}`);
      log(`committed ${result.commit.oid.slice(0, 12)}: ${result.url}`);
      log(`use it with: pnpm pretrain generate hf:${repo}${result.revision === 'main' ? '' : `@${result.revision}`}`);
    }
    return 0;
  } finally {
    if (staging) rmSync(staging, { recursive: true, force: true });
  }
}
