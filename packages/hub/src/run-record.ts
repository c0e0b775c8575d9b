import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { METRICS_FILE, PRUNE_REPORT_FILE, readJsonFile, TRAINER_STATE_FILE, type CheckpointLocation } from './checkpoint-files.js';

// The parts of deepen's run records (trainer events, trainer_state.json, analyze's report.json)
// that a model card quotes. Declared here rather than imported: the hub reads files and must
// not pull in the tensor packages that write them.

export interface StepRecord {
  step: number;
  loss: number;
  tokens: number;
}

export interface EvalRecord {
  step: number;
  loss: number;
  perplexity: number;
  tokens: number;
}

export interface DiagnosticsRecord {
  step: number;
  layers: Array<{ layer: number; outputVariance: number; gradNorm: number; updateRatio: number }>;
}

export interface TrainingRecord {
  /** The checkpoint's step. */
  step: number;
  steps: StepRecord[];
  evals: EvalRecord[];
  /** The last per-layer diagnostics event up to the checkpoint's step (from metrics.jsonl). */
  diagnostics: DiagnosticsRecord | null;
  /** The settings the run was started with (the pretrain flags). */
  settings: Record<string, unknown>;
}

export interface PruneRecord {
  removedLayers: number[];
  originalLayers: number;
  method: string;
  depths: string;
  /** Where the unpruned model came from: a Hub reference (hf:owner/name@rev) or a local path. */
  from: string | null;
  perplexity: { before: number | null; afterPruning: number | null; afterHealing: number | null; healSteps: number } | null;
}

export interface AnalysisRecord {
  scheme: string;
  layers: number;
  perplexity: { loss: number; perplexity: number; tokens: number };
  cloze: { accuracy: number } | null;
  multipleChoice: { accuracy: number } | null;
  depth: { layers: Array<{ layer: number; outputVariance: number; outputNorm: number; blockInfluence: number }>; tokens: number };
  removal: Array<{ layer: number; perplexity: number; perplexityIncrease: number }>;
}

function metricsEvents(runDir: string | null): Array<Record<string, unknown>> {
  const path = runDir === null ? null : join(runDir, METRICS_FILE);
  if (path === null || !existsSync(path)) return [];
  const events: Array<Record<string, unknown>> = [];
  const lines = readFileSync(path, 'utf8').split('\n');
  const last = lines.findLastIndex((line) => line.trim() !== '');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // The last line of a run killed mid-write can be cut; anything else is worth saying.
      if (i !== last) throw new Error(`${path}:${i + 1}: not a JSON line`);
    }
  });
  return events;
}

/**
 * What training produced this checkpoint: steps and evaluations from its trainer_state.json
 * (exactly the history up to this checkpoint), per-layer diagnostics from the run's
 * metrics.jsonl. Null for checkpoints that were not written by a training run.
 */
export function readTrainingRecord(location: CheckpointLocation): TrainingRecord | null {
  const state = readJsonFile<{ step?: number; run?: Record<string, unknown>; history?: { steps?: StepRecord[]; evals?: EvalRecord[] } }>(join(location.dir, TRAINER_STATE_FILE));
  const events = metricsEvents(location.runDir);
  if (!state && events.length === 0) return null;
  const upTo = (step: unknown, last: number) => typeof step === 'number' && step <= last;
  const fromMetrics = (kind: string, last: number) => events.filter((e) => e.event === kind && upTo(e.step, last));
  const metricSteps = fromMetrics('step', Infinity) as unknown as StepRecord[];
  const step = typeof state?.step === 'number' ? state.step : (metricSteps.at(-1)?.step ?? 0);
  const steps = state?.history?.steps ?? (fromMetrics('step', step) as unknown as StepRecord[]);
  const evals = state?.history?.evals ?? (fromMetrics('eval', step) as unknown as EvalRecord[]);
  const diagnostics = (fromMetrics('diagnostics', step).at(-1) as unknown as DiagnosticsRecord | undefined) ?? null;
  const runJson = location.runDir ? readJsonFile<{ flags?: Record<string, unknown> }>(join(location.runDir, 'run.json')) : null;
  return { step, steps, evals, diagnostics, settings: state?.run ?? runJson?.flags ?? {} };
}

/** The pruning that made this checkpoint, from config.json's deepen.pruned and prune_report.json. */
export function readPruneRecord(dir: string, config: Record<string, unknown>): PruneRecord | null {
  const pruned = (config.deepen as { pruned?: Record<string, unknown> } | undefined)?.pruned;
  if (!pruned) return null;
  const report = readJsonFile<{ healSteps?: number; before?: { perplexity?: number }; afterPruning?: { perplexity?: number }; afterHealing?: { perplexity?: number } | null }>(join(dir, PRUNE_REPORT_FILE));
  return {
    removedLayers: (pruned.removed_layers as number[] | undefined) ?? [],
    originalLayers: Number(pruned.original_num_hidden_layers),
    method: String(pruned.method ?? 'layers'),
    depths: String(pruned.depths ?? 'keep'),
    from: typeof pruned.from === 'string' ? pruned.from : null,
    perplexity: report
      ? {
          before: report.before?.perplexity ?? null,
          afterPruning: report.afterPruning?.perplexity ?? null,
          afterHealing: report.afterHealing?.perplexity ?? null,
          healSteps: report.healSteps ?? 0,
        }
      : null,
  };
}

/**
 * The entry for `checkpointDir` in an analyze report (its folder or its report.json). A report
 * about other checkpoints is an error, not something to quote on this model's card.
 */
export function readAnalysisRecord(reportPath: string, checkpointDir: string): AnalysisRecord {
  const file = existsSync(reportPath) && statSync(reportPath).isDirectory() ? join(reportPath, 'report.json') : reportPath;
  const report = readJsonFile<{ entries?: Array<{ name: string; checkpoint: string; result: AnalysisRecord }> }>(file);
  if (report === null) throw new Error(`${file}: analyze report not found`);
  if (!Array.isArray(report.entries)) throw new Error(`${file}: not an analyze report (no "entries")`);
  const entry = report.entries.find((e) => resolve(e.checkpoint) === resolve(checkpointDir));
  if (!entry) {
    throw new Error(`${file} has no entry for ${checkpointDir} (it analyzed ${report.entries.map((e) => e.checkpoint).join(', ') || 'nothing'}); run pretrain analyze on this checkpoint`);
  }
  return entry.result;
}
