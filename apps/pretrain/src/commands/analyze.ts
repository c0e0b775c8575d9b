import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tokenizer } from '@deepen/data';
import { analyzeModel, buildClozeTask, loadMultipleChoice, writeAnalysisReport, type AnalysisResult, type ReportEntry } from '@deepen/evaluator';
import type { LlamaModel } from '@deepen/models';
import { CHECKPOINT_HELP, checkpointDir, openCheckpoint } from '../checkpoints.js';
import { helpText, parseFlags, UsageError, type FlagSpec, type FlagValues } from '../flags.js';
import { ENGINE_FLAGS, evalCorpus, asFlagError, startEngine, tokenized } from '../setup.js';

export const ANALYSIS_FLAGS: Record<string, FlagSpec> = {
  data: { type: 'string', value: 'NAME|PATHS', default: 'sotu', description: 'held-out text: sotu (its validation split), moby-dick, or .txt/.jsonl files or folders' },
  'max-tokens': { type: 'int', min: 16, default: 16_384, description: 'held-out tokens for perplexity and diagnostics' },
  window: { type: 'int', min: 8, default: 128, description: 'perplexity window and diagnostics sequence length' },
  'cloze-items': { type: 'int', min: 0, default: 100, description: 'built-in last-word (cloze) items from the held-out text (0: none)' },
  tasks: { type: 'string', value: 'PATH', description: 'multiple-choice JSONL: {"context","choices","gold"} per line' },
  'batch-size': { type: 'int', min: 1, default: 8, description: 'sequences per batch' },
};

/** Runs the full analysis of one checkpoint as the flags describe. */
export async function analyzeCheckpoint(dir: string, values: FlagValues, log: (line: string) => void): Promise<{ result: AnalysisResult; model: LlamaModel; tokenizer: Tokenizer }> {
  const { model, tokenizer } = openCheckpoint(dir);
  const corpus = evalCorpus(String(values.data));
  const { validation } = await tokenized(corpus, tokenizer, log);
  const clozeItems = Number(values['cloze-items']);
  const result = analyzeModel(model, tokenizer, {
    text: validation,
    maxTokens: Number(values['max-tokens']),
    window: Number(values.window),
    batchSize: Number(values['batch-size']),
    ...(clozeItems > 0 ? { cloze: buildClozeTask(corpus.validation, { items: clozeItems }) } : {}),
    ...(values.tasks !== undefined ? { multipleChoice: asFlagError('tasks', () => loadMultipleChoice(String(values.tasks))) } : {}),
    layerRemoval: values['no-removal'] !== true,
    onProgress: (stage) => log(`  ${stage}`),
  });
  return { result, model, tokenizer };
}

const FLAGS: Record<string, FlagSpec> = {
  ...ANALYSIS_FLAGS,
  out: { type: 'string', value: 'DIR', description: 'report folder (default runs/analysis-<time>)' },
  'no-removal': { type: 'bool', description: 'skip the layer-removal study (one re-evaluation per layer)' },
  ...ENGINE_FLAGS,
};

export async function analyzeCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('analyze', argv, FLAGS, 16);
  if (values.help) {
    process.stdout.write(helpText('pretrain analyze CHECKPOINT... [options]', `Measure how much each layer contributes (perplexity, cloze and task accuracy, residual variance, Block Influence, angular distances, loss when a layer is removed) for one or more checkpoints, side by side. ${CHECKPOINT_HELP}`, FLAGS));
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('analyze needs at least one checkpoint or run folder');
  const dirs: string[] = [];
  for (const arg of positionals) dirs.push(await checkpointDir(arg));
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const outDir = resolve(values.out === undefined ? join('runs', `analysis-${stamp}`) : String(values.out));
  if (existsSync(outDir) && readdirSync(outDir).length > 0) throw new UsageError(`--out ${outDir} already holds files; choose another --out`);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  await startEngine(values, log);
  const entries: ReportEntry[] = [];
  const names = dirs.map((d, i) => positionals[i]!.replace(/\/+$/, '').split('/').filter((p) => p !== 'checkpoints' && !/^step-\d+$/.test(p)).at(-1) ?? `model-${i + 1}`);
  for (const [i, dir] of dirs.entries()) {
    log(`analyzing ${dir}`);
    const { result, model } = await analyzeCheckpoint(dir, values, log);
    model.dispose();
    entries.push({ name: names[i]!, checkpoint: dir, result });
  }
  writeAnalysisReport(outDir, entries, log);
  const width = Math.max(5, ...entries.map((e) => e.name.length));
  log(`\n${'model'.padEnd(width)}  scheme        perplexity  cloze   min BI (layer)`);
  for (const e of entries) {
    const r = e.result;
    const minBi = r.depth.layers.reduce((a, l) => (l.blockInfluence < a.blockInfluence ? l : a));
    log(`${e.name.padEnd(width)}  ${r.scheme.padEnd(12)}  ${r.perplexity.perplexity.toFixed(2).padStart(10)}  ${r.cloze ? `${(100 * r.cloze.accuracy).toFixed(1)}%`.padStart(6) : '   n/a'}  ${minBi.blockInfluence.toFixed(4)} (${minBi.layer})`);
  }
  log(`report: ${join(outDir, 'report.html')}`);
  return 0;
}
