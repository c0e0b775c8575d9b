import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BatchIterator, Tokenizer } from '@deepen/data';
import { isHubRef } from '@deepen/hub';
import { LlamaModel, readCheckpointConfig, trainingFlopsPerToken, withScheme } from '@deepen/models';
import { checkpointDir, openCheckpoint } from '../checkpoints.js';
import { loadTrainingState, readTrainingState, resolveCheckpoint, Trainer, TrainingDivergedError, type EvalEvent, type StepEvent, type TrainerEvents } from '@deepen/trainer';
import { helpText, parseFlags, UsageError, type FlagSpec, type FlagValues } from '../flags.js';
import { attachProgress, type OutputMode } from '../progress.js';
import { asFlagError, corpusFrom, ENGINE_FLAGS, planModel, schemeNames, sequencesFor, startEngine, tokenized, tokenizerFrom } from '../setup.js';

/** Flags that define a run (shared with `compare`). */
export const RUN_FLAGS: Record<string, FlagSpec> = {
  preset: { type: 'string', value: 'NAME', default: 'small', description: 'model shape: small, tiny, 9m, 20m, 35m, 60m, 71m, 130m, 250m, 350m, 1b' },
  config: { type: 'string', value: 'PATH', description: 'a config.json (or a folder with one) to use instead of --preset' },
  norm: { type: 'string', value: 'SCHEME', default: 'lns', description: "normalization scheme, parts joined by '+', e.g. lns, pre, mix, lns+scaled" },
  'mix-post-layers': { type: 'int', min: 0, description: 'Mix-LN: number of leading Post-LN layers (default 25% of the layers)' },
  steps: { type: 'int', min: 1, default: 100, description: 'optimizer steps' },
  'batch-size': { type: 'int', min: 1, default: 8, description: 'sequences per micro-batch' },
  'total-batch-size': { type: 'int', min: 1, description: 'sequences per optimizer step, reached by gradient accumulation (default: --batch-size)' },
  'seq-len': { type: 'int', min: 8, default: 128, description: 'tokens per sequence' },
  packing: { type: 'string', choices: ['packed', 'document'], default: 'packed', description: 'join documents and cut sequences, or one truncated/padded sequence per document' },
  lr: { type: 'float', min: 0, exclusiveMin: true, default: 3e-3, description: 'peak learning rate' },
  schedule: { type: 'string', choices: ['cosine', 'linear', 'constant', 'wsd'], default: 'cosine', description: 'learning-rate schedule after warmup' },
  warmup: { type: 'int', min: 0, default: 10, description: 'linear warmup steps' },
  'min-lr-ratio': { type: 'float', min: 0, max: 1, default: 0.1, description: 'final learning rate as a fraction of the peak' },
  optimizer: { type: 'string', choices: ['adam', 'adamw'], default: 'adam', description: 'Adam (L2 decay, as in the paper) or AdamW (decoupled)' },
  'weight-decay': { type: 'float', min: 0, default: 0, description: 'weight decay of the matrices' },
  'grad-clip': { type: 'float', min: 0, default: 0, description: 'global gradient-norm clipping; 0 turns it off' },
  'eval-every': { type: 'int', min: 0, default: 25, description: 'evaluate every N steps (0: only at the end)' },
  'eval-tokens': { type: 'int', min: 1, default: 8192, description: 'validation tokens per evaluation' },
  'diagnostics-every': { type: 'int', min: 0, default: 25, description: 'per-layer depth diagnostics every N steps (0: never)' },
  'save-every': { type: 'int', min: 0, default: 0, description: 'checkpoint every N steps (0: only at the end)' },
  'keep-last': { type: 'int', min: 1, default: 3, description: 'checkpoints to keep' },
  data: { type: 'string', value: 'PATHS', description: 'training data: .txt, .jsonl, .jsonl.gz files or folders, comma-separated (default: the built-in State of the Union corpus)' },
  'text-field': { type: 'string', value: 'NAME', description: 'JSONL field holding the text (default text)' },
  tokenizer: { type: 'string', value: 'PATH', description: 'a tokenizer.json or a folder with one (default: a byte-level BPE trained on the training data and cached)' },
  'vocab-size': { type: 'int', min: 260, max: 1_000_000, default: 2048, description: 'vocabulary size of the trained tokenizer' },
  seed: { type: 'int', min: 0, default: 0, description: 'seed for initialisation and data order' },
  ...ENGINE_FLAGS,
};

const TRAIN_FLAGS: Record<string, FlagSpec> = {
  ...RUN_FLAGS,
  out: { type: 'string', value: 'DIR', description: 'run folder (default runs/<preset>-<norm>-<time>)' },
  resume: { type: 'string', value: 'DIR', description: 'continue the run in DIR (its folder or a checkpoint) exactly where it stopped; a local folder, not hf:' },
  'init-from': {
    type: 'string',
    value: 'CHECKPOINT',
    description: "start from a pretrained checkpoint's weights and tokenizer (a folder, run or hf:owner/name; any family deepen loads) and continue pretraining; --norm changes its scheme (e.g. lns on a Pre-LN model), default: the checkpoint's",
  },
  quiet: { type: 'bool', description: 'print only the final result' },
  json: { type: 'bool', description: 'print every event as a JSON line' },
};

/** Settings a resumed run may change; everything else comes from its checkpoint. */
const RESUMABLE = new Set(['steps', 'eval-every', 'eval-tokens', 'diagnostics-every', 'save-every', 'keep-last', 'backend', 'quiet', 'json', 'resume']);

export const TRAIN_HELP = helpText('pretrain train [options]', `Pretrain a LLaMA model. Normalization schemes: ${'{schemes}'}.`, TRAIN_FLAGS);

export interface RunResult {
  outDir: string;
  reason: 'completed' | 'interrupted';
  steps: StepEvent[];
  evals: EvalEvent[];
  diagnostics: TrainerEvents['diagnostics'][];
  finalEval: EvalEvent | null;
  checkpoint: string | null;
  parameters: number;
  /** The step the run started from: 0, or the resumed checkpoint's step. */
  startStep: number;
}

function defaultOut(values: FlagValues): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const name = values['init-from'] !== undefined ? 'init' : values.config !== undefined ? 'custom' : String(values.preset);
  return join('runs', `${name}-${String(values.norm).replace(/\+/g, '-')}-${stamp}`);
}

/**
 * Trains one model as the flags describe and returns its history. Shared by `train` and
 * `compare`; `log` receives the human-readable setup lines.
 */
export async function runTraining(values: FlagValues, options: { mode: OutputMode; log: (line: string) => void; outDir: string; resumeFrom?: string; handleSignals?: boolean }): Promise<RunResult> {
  const { log } = options;
  const seqLen = Number(values['seq-len']);
  const batchSize = Number(values['batch-size']);
  const total = values['total-batch-size'] === undefined ? batchSize : Number(values['total-batch-size']);
  if (total % batchSize !== 0) throw new UsageError(`--total-batch-size (${total}) must be a multiple of --batch-size (${batchSize})`);
  const initFrom = values['init-from'] === undefined ? null : String(values['init-from']);
  const configFor = options.resumeFrom || initFrom ? null : planModel(values, seqLen);

  // The engine starts before any tensor exists: a resumed model's weights are tensors of the
  // engine that is current when they load (and on tfjs's default cpu engine they print its banner).
  const engine = await startEngine(values, log);
  const resume = options.resumeFrom ? loadTrainingState(options.resumeFrom) : null;
  const corpus = corpusFrom(values);
  // Continued pretraining keeps the checkpoint's own tokenizer: its ids are what the weights know.
  const initial = initFrom && !resume ? openCheckpoint(initFrom) : null;
  const tokenizer = resume ? Tokenizer.fromDir(resume.dir) : initial ? initial.tokenizer : tokenizerFrom(values, corpus, log);
  const tokens = await tokenized(corpus, tokenizer, log);
  const mode = values.packing as 'packed' | 'document';
  const trainSet = sequencesFor(tokens.train, tokenizer, seqLen, mode);
  const validation = tokens.validation.tokens.length > 0 ? sequencesFor(tokens.validation, tokenizer, seqLen, mode) : null;
  let model: LlamaModel;
  if (resume) model = resume.model;
  else if (initial) {
    const norm = String(values.norm);
    if (seqLen > initial.model.config.max_position_embeddings) {
      initial.model.dispose();
      throw new UsageError(`--seq-len ${seqLen} exceeds the checkpoint's context (max_position_embeddings ${initial.model.config.max_position_embeddings})`);
    }
    if (norm === initial.model.scheme.name && values['mix-post-layers'] === undefined) model = initial.model;
    else {
      try {
        model = withScheme(initial.model, { norm_scheme: norm, ...(values['mix-post-layers'] !== undefined ? { mix_post_layers: Number(values['mix-post-layers']) } : {}) }, { seed: Number(values.seed) });
      } catch (error) {
        throw new UsageError(`--norm ${norm}: ${(error as Error).message}`);
      } finally {
        if (model! !== initial.model) initial.model.dispose();
      }
      log(`init: ${initFrom}, its '${initial.model.scheme.name}' weights continued under '${model.scheme.name}'`);
    }
    if (model === initial.model) log(`init: ${initFrom} ('${model.scheme.name}', ${model.config.model_type})`);
  } else model = LlamaModel.create(configFor!(tokenizer), { seed: Number(values.seed) });
  const count = model.parameterCount();
  log(
    `model: ${model.config.num_hidden_layers} layers, hidden ${model.config.hidden_size}, '${model.scheme.name}', ${(count.total / 1e6).toFixed(2)}M parameters ` +
      `(${(count.nonEmbedding / 1e6).toFixed(2)}M non-embedding), ${(trainingFlopsPerToken(model.config, seqLen) / 1e6).toFixed(1)} MFLOP per training token`,
  );
  const loader = new BatchIterator(trainSet, batchSize, { seed: Number(values.seed), ...(resume ? { state: resume.state.loader } : {}) });
  const runConfig = { ...values, out: options.outDir, engine: engine.engine } as Record<string, unknown>;
  delete runConfig.resume;
  // The shape came from --config or the checkpoint: a preset name would be a default nobody chose.
  if (values.config !== undefined || initFrom) delete runConfig.preset;
  const trainer = new Trainer(
    { model, train: loader, validation, ...(resume ? { resume } : {}) },
    {
      steps: Number(values.steps),
      accumulation: total / batchSize,
      lr: Number(values.lr),
      schedule: values.schedule as 'cosine',
      warmup: Math.min(Number(values.warmup), Number(values.steps)),
      minLrRatio: Number(values['min-lr-ratio']),
      optimizer: values.optimizer as 'adam' | 'adamw',
      weightDecay: Number(values['weight-decay']),
      gradClip: Number(values['grad-clip']),
      evalEvery: Number(values['eval-every']),
      evalTokens: Number(values['eval-tokens']),
      diagnosticsEvery: Number(values['diagnostics-every']),
      saveEvery: Number(values['save-every']),
      keepLast: Number(values['keep-last']),
      outDir: options.outDir,
      // tokenizer.json and the config files it came with (a pretrained model's chat template, special tokens).
      files: tokenizer.files(),
      // The trainer keeps the run's records (run.json, metrics.jsonl) in outDir.
      runConfig,
      engine,
    },
  );
  mkdirSync(options.outDir, { recursive: true });
  attachProgress(trainer, options.mode);
  const diagnostics: TrainerEvents['diagnostics'][] = [];
  trainer.on('diagnostics', (d) => diagnostics.push(d));

  const signals: Array<[NodeJS.Signals, () => void]> = [];
  if (options.handleSignals) {
    let stopping = false;
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      const handler = () => {
        if (stopping) process.exit(130); // a second Ctrl-C does not wait
        stopping = true;
        // No step is under way when a signal is handled (steps run synchronously): the run
        // stops before the next one and saves the steps done so far.
        const step = trainer.requestStop();
        process.stderr.write(`\n${signal}: stopping after step ${step}, saving its checkpoint (again to quit now)\n`);
      };
      process.on(signal, handler);
      signals.push([signal, handler]);
    }
  }
  try {
    const result = await trainer.run();
    return {
      outDir: options.outDir,
      reason: result.reason,
      steps: trainer.history.steps,
      evals: trainer.history.evals,
      diagnostics,
      finalEval: result.eval,
      checkpoint: result.checkpoint,
      parameters: count.total,
      startStep: resume ? resume.state.step : 0,
    };
  } finally {
    for (const [signal, handler] of signals) process.off(signal, handler);
    trainer.dispose();
    model.dispose();
  }
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { values, given } = parseFlags('train', argv, TRAIN_FLAGS);
  if (values.help) {
    process.stdout.write(TRAIN_HELP.replace('{schemes}', schemeNames()));
    return 0;
  }
  if (values.quiet && values.json) throw new UsageError('--quiet and --json cannot be combined');
  const mode: OutputMode = values.json ? 'json' : values.quiet ? 'quiet' : 'human';
  const log = mode === 'human' ? (line: string) => process.stdout.write(`${line}\n`) : () => {};

  let settings = values;
  let outDir: string;
  let resumeFrom: string | undefined;
  if (values['init-from'] !== undefined && values.resume === undefined) {
    const clash = ['preset', 'config', 'tokenizer', 'vocab-size'].find((f) => given.has(f));
    if (clash) throw new UsageError(`--${clash} cannot be combined with --init-from: the model's shape and tokenizer come from the checkpoint`);
    const source = String(values['init-from']);
    const dir = await checkpointDir(source);
    let checkpointNorm: string;
    try {
      checkpointNorm = readCheckpointConfig(dir).deepen.norm_scheme;
    } catch (error) {
      throw new UsageError(`--init-from: ${(error as Error).message}`);
    }
    // The run records the folder it read (a Hub download's cache folder pins the revision).
    settings = { ...values, 'init-from': dir, ...(given.has('norm') ? {} : { norm: checkpointNorm }) };
    log(`init-from ${source}${dir !== source ? ` (${dir})` : ''}`);
  }
  if (values.resume !== undefined) {
    if (isHubRef(String(values.resume))) {
      throw new UsageError('--resume needs the local run folder (or one of its checkpoints): a published checkpoint has no optimizer or data-loader state, so no run can continue exactly from it');
    }
    const changed = [...given].filter((f) => !RESUMABLE.has(f));
    if (changed.length > 0) throw new UsageError(`--${changed[0]} cannot change when resuming: the run's settings come from its checkpoint (only ${[...RESUMABLE].filter((f) => f !== 'resume').map((f) => `--${f}`).join(', ')} may)`);
    resumeFrom = asFlagError('resume', () => resolveCheckpoint(resolve(String(values.resume))));
    const { state } = readTrainingState(resumeFrom);
    settings = { ...(state.run as FlagValues), ...Object.fromEntries([...given].map((f) => [f, values[f]])) };
    outDir = dirname(dirname(resumeFrom));
    log(`resuming ${outDir} from step ${state.step}`);
  } else {
    outDir = resolve(values.out === undefined ? defaultOut(settings) : String(values.out));
    if (existsSync(outDir) && readdirSync(outDir).length > 0) {
      throw new UsageError(`--out ${outDir} already holds files; pass --resume ${outDir} to continue that run, or choose another --out`);
    }
  }
  let result: RunResult;
  try {
    result = await runTraining(settings, { mode, log, outDir, ...(resumeFrom ? { resumeFrom } : {}), handleSignals: true });
  } catch (error) {
    if (error instanceof TrainingDivergedError) {
      process.stderr.write(`pretrain train: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  const ev = result.finalEval;
  const summary = {
    reason: result.reason,
    step: result.steps.at(-1)?.step ?? 0,
    validationLoss: ev?.loss ?? null,
    validationPerplexity: ev?.perplexity ?? null,
    checkpoint: result.checkpoint,
    run: result.outDir,
  };
  if (mode === 'json') process.stdout.write(`${JSON.stringify({ event: 'summary', ...summary })}\n`);
  else if (result.reason === 'interrupted') {
    process.stdout.write(`interrupted at step ${summary.step}; checkpoint ${result.checkpoint ?? '(none)'}; continue with: pretrain train --resume ${result.outDir}\n`);
  } else if (summary.step === result.startStep && resumeFrom !== undefined) {
    // Resumed at (or past) its last step: nothing was trained; say what the run already holds.
    const evaluated = ev ? `; last evaluation at step ${ev.step}: perplexity ${ev.perplexity.toFixed(2)} (loss ${ev.loss.toFixed(4)})` : '';
    process.stdout.write(`nothing to do: the run already finished its ${summary.step} steps (a larger --steps trains further)${evaluated}; checkpoint ${result.checkpoint ?? resumeFrom}\n`);
  } else {
    process.stdout.write(
      `final validation perplexity ${ev ? ev.perplexity.toFixed(2) : 'n/a'} (loss ${ev ? ev.loss.toFixed(4) : 'n/a'}) after ${summary.step} steps; checkpoint ${result.checkpoint}\n`,
    );
  }
  return result.reason === 'interrupted' ? 130 : 0;
}
