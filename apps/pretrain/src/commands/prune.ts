import { existsSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { PRUNE_REPORT_FILE, pruneReportJson } from '@deepen/core';
import { BatchIterator } from '@deepen/data';
import { analyzeModel, buildClozeTask, type AnalysisResult } from '@deepen/evaluator';
import { saveCheckpoint } from '@deepen/models';
import { angularPlan, applyPlan, blockInfluencePlan, removeLayersPlan, type PrunePlan } from '@deepen/pruner';
import { Trainer } from '@deepen/trainer';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import { corpusFrom, ENGINE_FLAGS, evalCorpus, sequencesFor, startEngine, tokenized } from '../setup.js';
import { CHECKPOINT_HELP, checkpointDir, checkpointSource, openCheckpoint } from '../checkpoints.js';
import { ANALYSIS_FLAGS } from './analyze.js';

const FLAGS: Record<string, FlagSpec> = {
  plan: { type: 'string', value: 'PLAN', description: 'layers:I,J,... (remove those, 0-based) | bi:K (the K layers of lowest Block Influence) | angular:N (the N consecutive layers of smallest angular distance, last layer kept)' },
  out: { type: 'string', value: 'DIR', description: 'folder for the pruned checkpoint' },
  depths: { type: 'string', choices: ['keep', 'recompute'], default: 'keep', description: 'keep each layer\'s original LNS/DeepNorm constants, or recompute them from the new depths' },
  'heal-steps': { type: 'int', min: 0, default: 0, description: 'continue training the pruned model for N steps' },
  'heal-data': { type: 'string', value: 'PATHS', description: 'healing data (default: the built-in corpus)' },
  'heal-lr': { type: 'float', min: 0, exclusiveMin: true, default: 1e-3, description: 'healing learning rate' },
  seed: { type: 'int', min: 0, default: 0, description: 'healing data order' },
  ...ANALYSIS_FLAGS,
  ...ENGINE_FLAGS,
};

function parsePlan(text: string, layers: number, diagnostics: () => AnalysisResult['depth']): PrunePlan {
  const m = /^(layers|bi|angular):(.+)$/.exec(text);
  if (!m) throw new UsageError(`--plan must be layers:I,J | bi:K | angular:N, got '${text}'`);
  try {
    if (m[1] === 'layers') {
      const indices = m[2]!.split(',').map((s) => Number(s.trim()));
      if (indices.some((i) => !Number.isInteger(i))) throw new Error(`layer indices must be integers, got '${m[2]}'`);
      return removeLayersPlan(indices, layers);
    }
    const k = Number(m[2]);
    return m[1] === 'bi' ? blockInfluencePlan(diagnostics(), k) : angularPlan(diagnostics(), k);
  } catch (error) {
    throw new UsageError(`--plan ${text}: ${(error as Error).message}`);
  }
}

export async function pruneCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('prune', argv, FLAGS, 1);
  if (values.help) {
    process.stdout.write(helpText('pretrain prune CHECKPOINT --plan PLAN --out DIR [options]', `Remove layers from a model, optionally heal it with a short continued training, and report perplexity and accuracy before and after. ${CHECKPOINT_HELP}`, FLAGS));
    return 0;
  }
  if (!positionals[0]) throw new UsageError('prune needs a checkpoint or run folder');
  if (values.plan === undefined) throw new UsageError('--plan is required');
  if (values.out === undefined) throw new UsageError('--out is required');
  if (!/^(layers|bi|angular):.+$/.test(String(values.plan))) throw new UsageError(`--plan must be layers:I,J | bi:K | angular:N, got '${values.plan}'`);
  const outDir = resolve(String(values.out));
  if (existsSync(outDir) && readdirSync(outDir).length > 0) throw new UsageError(`--out ${outDir} already holds files; choose another --out`);
  const dir = await checkpointDir(positionals[0]);
  const source = checkpointSource(positionals[0], dir);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  await startEngine(values, log);
  const { model, tokenizer } = openCheckpoint(dir);
  const corpus = evalCorpus(String(values.data));
  const { validation } = await tokenized(corpus, tokenizer, log);
  const clozeItems = Number(values['cloze-items']);
  const measure = (m: typeof model) =>
    analyzeModel(m, tokenizer, {
      text: validation,
      maxTokens: Number(values['max-tokens']),
      window: Number(values.window),
      batchSize: Number(values['batch-size']),
      ...(clozeItems > 0 ? { cloze: buildClozeTask(corpus.validation, { items: clozeItems }) } : {}),
      layerRemoval: false,
    });
  const before = measure(model);
  const plan = parsePlan(String(values.plan), model.config.num_hidden_layers, () => before.depth);
  log(`plan: remove layers ${plan.remove.join(', ')} (${plan.method}) of ${model.config.num_hidden_layers}`);
  const pruned = applyPlan(model, plan, { depths: values.depths as 'keep' | 'recompute', source });
  model.dispose();
  const afterPruning = measure(pruned);
  let afterHealing: AnalysisResult | null = null;
  const healSteps = Number(values['heal-steps']);
  if (healSteps > 0) {
    const healCorpus = corpusFrom({ data: values['heal-data'], seed: values.seed });
    const { train } = await tokenized(healCorpus, tokenizer, log);
    const seqLen = Math.min(Number(values.window), pruned.config.max_position_embeddings);
    const trainer = new Trainer(
      { model: pruned, train: new BatchIterator(sequencesFor(train, tokenizer, seqLen, 'packed'), Number(values['batch-size']), { seed: Number(values.seed) }) },
      { steps: healSteps, lr: Number(values['heal-lr']), warmup: Math.min(10, healSteps), schedule: 'cosine' },
    );
    trainer.on('step', (e) => {
      if (e.step % Math.max(1, Math.round(healSteps / 10)) === 0 || e.step === healSteps) log(`  heal step ${e.step}/${healSteps}: loss ${e.loss.toFixed(4)}`);
    });
    await trainer.run();
    trainer.dispose();
    afterHealing = measure(pruned);
  }
  const summary = (r: AnalysisResult) => ({ layers: r.layers, perplexity: r.perplexity.perplexity, clozeAccuracy: r.cloze?.accuracy ?? null });
  const report = pruneReportJson({
    source,
    plan,
    depths: values.depths as 'keep' | 'recompute',
    healSteps,
    before: summary(before),
    afterPruning: summary(afterPruning),
    afterHealing: afterHealing ? summary(afterHealing) : null,
  });
  // The report is part of the checkpoint folder, which appears complete or not at all.
  await saveCheckpoint(pruned, outDir, { files: { ...tokenizer.files(), [PRUNE_REPORT_FILE]: report } });
  pruned.dispose();
  const row = (name: string, r: AnalysisResult | null) =>
    r && log(`${name.padEnd(14)}  ${String(r.layers).padStart(6)}  ${r.perplexity.perplexity.toFixed(2).padStart(10)}  ${r.cloze ? `${(100 * r.cloze.accuracy).toFixed(1)}%`.padStart(6) : '   n/a'}`);
  log(`\n${'model'.padEnd(14)}  layers  perplexity   cloze`);
  row('original', before);
  row('pruned', afterPruning);
  row('healed', afterHealing);
  log(`pruned checkpoint: ${outDir}`);
  return 0;
}
