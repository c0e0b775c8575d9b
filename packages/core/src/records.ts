import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileDurable, writeJsonDurable } from './durable.js';
import { ANALYSIS_REPORT_FILE, METRICS_FILE, PRUNE_REPORT_FILE, readJsonFile, RUN_FILE, TRAINER_STATE_FILE, type CheckpointLocation } from './layout.js';

/**
 * The records deepen writes next to its checkpoints, declared once with their readers and
 * writers: run.json and metrics.jsonl (a training run), trainer_state.json (a training
 * checkpoint), prune_report.json (a pruned checkpoint) and an analysis report's report.json.
 * The trainer and the apps write them; the hub, the apps and people's scripts read them.
 */

// ---------------------------------------------------------------------------------------------
// Training events (the lines of metrics.jsonl; @deepen/trainer emits the same objects)

/** After every optimizer step. */
export interface StepRecord {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  clipped: boolean;
  /** Tokens whose loss counted in this step. */
  tokens: number;
  tokensPerSecond: number;
  /** Model FLOPs per second achieved (from the config's training FLOPs per token). */
  flopsPerSecond: number;
  /** Seconds since the run (or resumption) started. */
  elapsed: number;
}

export interface EvalRecord {
  step: number;
  loss: number;
  perplexity: number;
  /** Share of counted positions where the most likely token is the target. */
  accuracy: number;
  tokens: number;
}

/** Per-block evidence of how much each layer does (the paper's measurements). */
export interface LayerDiagnosticsRecord {
  /** 0-based layer index. */
  layer: number;
  /** Variance of the residual stream after the block (over tokens and channels). */
  outputVariance: number;
  /** Norm of the block's gradient at this step. */
  gradNorm: number;
  /** ||update|| / ||weights|| of the block at this step. */
  updateRatio: number;
}

export interface DiagnosticsRecord {
  step: number;
  layers: LayerDiagnosticsRecord[];
}

export interface CheckpointRecord {
  step: number;
  dir: string;
}

export interface DoneRecord {
  reason: 'completed' | 'interrupted';
  step: number;
  /** The last evaluation, if any. */
  eval: EvalRecord | null;
  checkpoint: string | null;
}

export interface ErrorRecord {
  step: number;
  message: string;
  /** 0-based layer where things went bad, when it can be told. */
  layer: number | null;
}

export interface TrainingEventRecords {
  step: StepRecord;
  eval: EvalRecord;
  diagnostics: DiagnosticsRecord;
  checkpoint: CheckpointRecord;
  done: DoneRecord;
  error: ErrorRecord;
}

export type TrainingEventName = keyof TrainingEventRecords;
export const TRAINING_EVENTS: readonly TrainingEventName[] = ['step', 'eval', 'diagnostics', 'checkpoint', 'done', 'error'];

/** One line of metrics.jsonl: the event's name, when it happened, and its fields. */
export type MetricsLine = { [K in TrainingEventName]: { event: K; time: string } & TrainingEventRecords[K] }[TrainingEventName];

function parseJsonLines(path: string): Array<Record<string, unknown>> {
  const lines = readFileSync(path, 'utf8').split('\n');
  const last = lines.findLastIndex((line) => line.trim() !== '');
  const out: Array<Record<string, unknown>> = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // The last line of a run killed mid-write can be cut; anything else is worth saying.
      if (i === last) return;
      throw new Error(`${path}:${i + 1}: not a JSON line`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path}:${i + 1}: not a JSON object`);
    out.push(value as Record<string, unknown>);
  });
  return out;
}

/**
 * The events of a run's metrics.jsonl, oldest first ([] without one); `upToStep` keeps those of
 * steps up to and including it (a checkpoint's history). A cut last line is skipped.
 */
export function readMetrics(runDir: string, options: { upToStep?: number } = {}): MetricsLine[] {
  const path = join(runDir, METRICS_FILE);
  if (!existsSync(path)) return [];
  const limit = options.upToStep ?? Infinity;
  return parseJsonLines(path).filter(
    (e) => typeof e.event === 'string' && (TRAINING_EVENTS as readonly string[]).includes(e.event) && !(typeof e.step === 'number' && e.step > limit),
  ) as unknown as MetricsLine[];
}

/**
 * Appends training events to a run's metrics.jsonl. Opening it for a resumed run first cuts the
 * file back to the resumed step (atomically), so it never holds steps the run will redo;
 * `sync` makes every line written so far durable (the trainer calls it before a checkpoint
 * counts, so the log always covers the checkpoint a run resumes from).
 */
export class MetricsLog {
  private readonly file: JsonLinesWriter;

  private constructor(readonly path: string) {
    this.file = new JsonLinesWriter(path, 'metrics log');
  }

  static open(runDir: string, options: { resumeStep?: number | null } = {}): MetricsLog {
    mkdirSync(runDir, { recursive: true });
    const path = join(runDir, METRICS_FILE);
    const resumeStep = options.resumeStep ?? null;
    if (resumeStep !== null && existsSync(path)) {
      const kept = readMetrics(runDir, { upToStep: resumeStep })
        // A run that stopped and resumes is not done: its old closing line goes.
        .filter((e) => e.event !== 'done');
      writeFileDurable(path, kept.map((e) => `${JSON.stringify(e)}\n`).join(''));
    }
    return new MetricsLog(path);
  }

  append<K extends TrainingEventName>(event: K, payload: TrainingEventRecords[K], time: Date = new Date()): void {
    this.file.append({ event, time: time.toISOString(), ...payload });
  }

  sync(): void {
    this.file.sync();
  }

  close(): void {
    this.file.close();
  }
}

/**
 * An append-only JSON-lines file held open: each value becomes one line, written whole; `sync`
 * makes every line so far durable, `close` syncs and closes. metrics.jsonl and the fine-tuning
 * service's event journal are both written through it.
 */
export class JsonLinesWriter {
  private fd: number | null;

  /** `what` names the file in errors; `fd`, when given, is a descriptor already open for appending. */
  constructor(
    readonly path: string,
    private readonly what: string,
    fd?: number,
  ) {
    this.fd = fd ?? openSync(path, 'a');
  }

  append(value: unknown): void {
    if (this.fd === null) throw new Error(`${this.path}: ${this.what} is closed`);
    const line = Buffer.from(`${JSON.stringify(value)}\n`, 'utf8');
    let offset = 0;
    while (offset < line.byteLength) offset += writeSync(this.fd, line, offset, line.byteLength - offset);
  }

  sync(): void {
    if (this.fd !== null) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}

// ---------------------------------------------------------------------------------------------
// run.json: how a run was started

export interface RunRecord {
  format: 1;
  /** The settings the run was started with (for `pretrain`, its flags). */
  settings: Record<string, unknown>;
  /** The engine report of the first start (see @deepen/backend's BackendReport). */
  engine: Record<string, unknown> | null;
  parameters: { total: number; nonEmbedding: number } | null;
  /** ISO time the run started. */
  started: string;
}

export function writeRunRecord(runDir: string, record: Omit<RunRecord, 'format'>): void {
  writeJsonDurable(join(runDir, RUN_FILE), { format: 1, ...record });
}

/** A run's run.json, or null without one. Older files kept the settings under "flags". */
export function readRunRecord(runDir: string): RunRecord | null {
  const path = join(runDir, RUN_FILE);
  const raw = readJsonFile<Record<string, unknown>>(path);
  if (raw === null) return null;
  const settings = raw.settings ?? raw.flags;
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) throw new Error(`${path}: not a deepen run record (no "settings" object)`);
  return {
    format: 1,
    settings: settings as Record<string, unknown>,
    engine: (raw.engine as Record<string, unknown> | undefined) ?? null,
    parameters: (raw.parameters as RunRecord['parameters'] | undefined) ?? null,
    started: typeof raw.started === 'string' ? raw.started : '',
  };
}

// ---------------------------------------------------------------------------------------------
// trainer_state.json: what a training checkpoint holds besides weights and optimizer moments

export interface TrainerStateRecord<Loader = unknown> {
  format: 2;
  step: number;
  /** The data loader's position (opaque here; @deepen/data defines it). */
  loader: Loader;
  optimizer: { kind: 'adam' | 'adamw'; step: number };
  /** The settings the run was started with, for resuming and for reports. */
  run: Record<string, unknown>;
  /** The last evaluation up to this step (the history lives in metrics.jsonl). */
  lastEval: EvalRecord | null;
}

export function trainerStateJson<Loader>(state: TrainerStateRecord<Loader>): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

/**
 * A checkpoint's trainer_state.json, validated. Format 1 (which also carried the whole step
 * history) still reads; its history is dropped, the last evaluation kept.
 */
export function readTrainerState<Loader = unknown>(checkpointDir: string): TrainerStateRecord<Loader> {
  const path = join(checkpointDir, TRAINER_STATE_FILE);
  const raw = readJsonFile<Record<string, unknown>>(path);
  if (raw === null) throw new Error(`${path}: file not found`);
  const fail = (why: string) => new Error(`${path}: not a deepen trainer state (${why})`);
  if (raw.format !== 1 && raw.format !== 2) throw fail(`format ${JSON.stringify(raw.format)}`);
  if (!Number.isInteger(raw.step) || (raw.step as number) < 0) throw fail(`step ${JSON.stringify(raw.step)}`);
  const optimizer = raw.optimizer as TrainerStateRecord['optimizer'] | undefined;
  if (!optimizer || (optimizer.kind !== 'adam' && optimizer.kind !== 'adamw') || !Number.isInteger(optimizer.step)) throw fail('no optimizer kind and step');
  if (typeof raw.loader !== 'object' || raw.loader === null) throw fail('no loader state');
  const lastEval =
    raw.format === 2 ? ((raw.lastEval as EvalRecord | null | undefined) ?? null) : (((raw.history as { evals?: EvalRecord[] } | undefined)?.evals ?? []).at(-1) ?? null);
  return {
    format: 2,
    step: raw.step as number,
    loader: raw.loader as Loader,
    optimizer,
    run: (raw.run as Record<string, unknown> | undefined) ?? {},
    lastEval,
  };
}

// ---------------------------------------------------------------------------------------------
// Analysis results and reports (written by @deepen/evaluator, quoted by model cards)

export interface LayerDepthStats {
  /** 0-based layer. */
  layer: number;
  /** Variance of the residual stream after the block (over tokens and channels). */
  outputVariance: number;
  /** Mean L2 norm of a token's residual stream after the block. */
  outputNorm: number;
  /** 1 - mean cosine between the block's input and output (ShortGPT). */
  blockInfluence: number;
}

export interface DepthDiagnostics {
  layers: LayerDepthStats[];
  /**
   * angular[l][n - 1] = mean of arccos(cos(h_l, h_{l+n})) / pi, where h_l is the input of
   * layer l (h_L the last output): how far n consecutive layers starting at l move a token.
   */
  angularAllTokens: number[][];
  /** The same on each sequence's last token (Gromov et al.). */
  angularLastToken: number[][];
  tokens: number;
}

export interface MultipleChoiceResult {
  accuracy: number;
  /** Accuracy when each choice's log-probability is divided by its length in bytes (lm-eval's acc_norm). */
  accuracyNorm: number;
  items: number;
}

export interface ClozeResult {
  /** Share of items whose target tokens are all the model's greedy predictions. */
  accuracy: number;
  /** exp(mean negative log-likelihood per target token). */
  targetPerplexity: number;
  items: number;
}

export interface LayerRemoval {
  layer: number;
  perplexity: number;
  /** Perplexity without the layer minus with it (how much the model needs it). */
  perplexityIncrease: number;
  clozeAccuracy: number | null;
  /** Cloze accuracy with the layer minus without it. */
  clozeAccuracyDrop: number | null;
  multipleChoiceAccuracy: number | null;
  multipleChoiceAccuracyDrop: number | null;
}

export interface AnalysisResult {
  scheme: string;
  layers: number;
  perplexity: { loss: number; perplexity: number; tokens: number };
  cloze: ClozeResult | null;
  multipleChoice: MultipleChoiceResult | null;
  depth: DepthDiagnostics;
  removal: LayerRemoval[];
}

export interface AnalysisEntry {
  /** Shown in legends, e.g. the run or scheme name. */
  name: string;
  checkpoint: string;
  result: AnalysisResult;
}

export function writeAnalysisReportJson(dir: string, entries: AnalysisEntry[]): void {
  writeJsonDurable(join(dir, ANALYSIS_REPORT_FILE), { format: 1, entries });
}

/** The entries of an analysis report (its folder or its report.json). */
export function readAnalysisReport(reportPath: string): AnalysisEntry[] {
  const file = existsSync(reportPath) && statSync(reportPath).isDirectory() ? join(reportPath, ANALYSIS_REPORT_FILE) : reportPath;
  const report = readJsonFile<{ entries?: unknown }>(file);
  if (report === null) throw new Error(`${file}: analyze report not found`);
  if (!Array.isArray(report.entries)) throw new Error(`${file}: not an analyze report (no "entries")`);
  return report.entries as AnalysisEntry[];
}

/**
 * The entry for `checkpointDir` in an analysis report. A report about other checkpoints is an
 * error, not something to quote on this model's card.
 */
export function analysisEntryFor(reportPath: string, checkpointDir: string): AnalysisResult {
  const entries = readAnalysisReport(reportPath);
  const entry = entries.find((e) => resolve(e.checkpoint) === resolve(checkpointDir));
  if (!entry) {
    throw new Error(`${reportPath} has no entry for ${checkpointDir} (it analyzed ${entries.map((e) => e.checkpoint).join(', ') || 'nothing'}); run pretrain analyze on this checkpoint`);
  }
  return entry.result;
}

// ---------------------------------------------------------------------------------------------
// prune_report.json: how a pruned checkpoint was made and what it cost

export interface PruneStageSummary {
  layers: number;
  perplexity: number;
  clozeAccuracy: number | null;
}

export interface PruneReport {
  format: 1;
  /** Where the unpruned model came from (a path or hf:owner/name@revision). */
  source: string;
  plan: { remove: number[]; method: string; detail: Record<string, unknown> };
  depths: 'keep' | 'recompute';
  healSteps: number;
  before: PruneStageSummary;
  afterPruning: PruneStageSummary;
  afterHealing: PruneStageSummary | null;
}

export function pruneReportJson(report: Omit<PruneReport, 'format'>): string {
  return `${JSON.stringify({ format: 1, ...report }, null, 2)}\n`;
}

/** A pruned checkpoint's prune_report.json, or null without one. */
export function readPruneReport(checkpointDir: string): PruneReport | null {
  const path = join(checkpointDir, PRUNE_REPORT_FILE);
  const raw = readJsonFile<Partial<PruneReport>>(path);
  if (raw === null) return null;
  if (!raw.plan || !Array.isArray(raw.plan.remove) || !raw.before) throw new Error(`${path}: not a deepen prune report (no "plan" and "before")`);
  return { format: 1, healSteps: 0, afterHealing: null, depths: 'keep', source: '', ...raw } as PruneReport;
}

// ---------------------------------------------------------------------------------------------
// A checkpoint's training history, for model cards and reports

export interface TrainingHistory {
  /** The checkpoint's step. */
  step: number;
  steps: StepRecord[];
  evals: EvalRecord[];
  /** The last per-layer diagnostics up to the checkpoint's step. */
  diagnostics: DiagnosticsRecord | null;
  /** The settings the run was started with. */
  settings: Record<string, unknown>;
}

/**
 * What training produced a checkpoint: its step (trainer_state.json), the steps, evaluations and
 * last diagnostics up to that step (the run's metrics.jsonl) and the run's settings. Null for a
 * checkpoint no training run wrote.
 */
export function readTrainingHistory(location: CheckpointLocation): TrainingHistory | null {
  const state = existsSync(join(location.dir, TRAINER_STATE_FILE)) ? readTrainerState(location.dir) : null;
  const upTo = location.runDir ? readMetrics(location.runDir, state ? { upToStep: state.step } : {}) : [];
  if (!state && upTo.length === 0) return null;
  const step = state?.step ?? upTo.filter((e) => e.event === 'step').at(-1)?.step ?? 0;
  const steps = upTo.filter((e): e is MetricsLine & { event: 'step' } => e.event === 'step').map(({ event: _e, time: _t, ...rest }) => rest as StepRecord);
  const evals = upTo.filter((e): e is MetricsLine & { event: 'eval' } => e.event === 'eval').map(({ event: _e, time: _t, ...rest }) => rest as EvalRecord);
  const last = upTo.filter((e): e is MetricsLine & { event: 'diagnostics' } => e.event === 'diagnostics').at(-1);
  const diagnostics = last ? { step: last.step, layers: last.layers } : null;
  const run = location.runDir ? readRunRecord(location.runDir) : null;
  const settings = state && Object.keys(state.run).length > 0 ? state.run : (run?.settings ?? {});
  return { step, steps, evals, diagnostics, settings };
}
