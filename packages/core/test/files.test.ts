import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkpointName,
  encodeFloat32,
  listCheckpoints,
  locateCheckpoint,
  MetricsLog,
  parseSafetensors,
  pruneReportJson,
  readAnalysisReport,
  analysisEntryFor,
  readMetrics,
  readPruneReport,
  readRunRecord,
  readSafetensorsHeader,
  readTrainerState,
  readTrainingHistory,
  serializeSafetensors,
  shardFileName,
  summarizeSafetensors,
  tensorToFloat32,
  trainerStateJson,
  weightFiles,
  writeAnalysisReportJson,
  writeRunRecord,
  type AnalysisResult,
  type StepRecord,
} from '../src/index.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'deepen-core-'));

function safetensorsFile(): Buffer {
  return Buffer.concat(
    serializeSafetensors(
      [
        { name: 'b', dtype: 'BF16', shape: [2], bytes: encodeFloat32(Float32Array.from([1.5, -2.25]), 'BF16') },
        { name: 'a', dtype: 'F32', shape: [2, 2], bytes: encodeFloat32(Float32Array.from([1, 2, 3, 4]), 'F32') },
      ],
      { format: 'pt' },
    ),
  );
}

describe('safetensors', () => {
  it('reads the header alone from disk exactly as the in-memory parser does', () => {
    const dir = scratch();
    const path = join(dir, 'model.safetensors');
    const bytes = safetensorsFile();
    writeFileSync(path, bytes);
    const header = readSafetensorsHeader(path);
    expect([...header.entries.keys()]).toEqual(['a', 'b']);
    expect(header.entries.get('a')).toEqual({ dtype: 'F32', shape: [2, 2], begin: 0, end: 16 });
    expect(header.metadata).toEqual({ format: 'pt' });
    expect(summarizeSafetensors(path)).toEqual({ parameters: 6, dtypes: ['BF16', 'F32'], tensors: 2 });
    const parsed = parseSafetensors(bytes, path);
    expect(Array.from(tensorToFloat32(parsed.tensors.get('b')!, 'b'))).toEqual([1.5, -2.25]);
    expect(Array.from(tensorToFloat32(parsed.tensors.get('a')!, 'a'))).toEqual([1, 2, 3, 4]);
  });

  it('refuses a truncated or padded file by name, from the header alone', () => {
    const dir = scratch();
    const bytes = safetensorsFile();
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, bytes.subarray(0, bytes.byteLength - 3));
    expect(() => readSafetensorsHeader(cut)).toThrow(`${cut}: tensor b: data ends at byte 20 but the data section has 17 bytes (truncated file)`);
    const padded = join(dir, 'padded.safetensors');
    writeFileSync(padded, Buffer.concat([bytes, Buffer.from([0, 0])]));
    expect(() => summarizeSafetensors(padded)).toThrow(`${padded}: data section has 22 bytes but the tensors cover 20`);
    const tiny = join(dir, 'tiny.safetensors');
    writeFileSync(tiny, Buffer.from([1, 2, 3]));
    expect(() => readSafetensorsHeader(tiny)).toThrow(`${tiny}: file is 3 bytes, too short for a safetensors header (truncated?)`);
  });
});

describe('folder layout', () => {
  it('names checkpoints and shards as deepen and transformers do', () => {
    expect(checkpointName(100)).toBe('step-0000100');
    expect(shardFileName(2, 12)).toBe('model-00002-of-00012.safetensors');
  });

  it('finds the newest complete checkpoint of a run and skips temporaries', () => {
    const run = scratch();
    writeFileSync(join(run, 'run.json'), '{"settings":{}}');
    for (const name of ['step-0000001', 'step-0000002', `.step-0000003.incomplete-1-0123abcd`]) {
      mkdirSync(join(run, 'checkpoints', name), { recursive: true });
      writeFileSync(join(run, 'checkpoints', name, 'config.json'), '{}');
    }
    writeFileSync(join(run, 'checkpoints', 'step-0000002', 'trainer_state.json'), '{}');
    mkdirSync(join(run, 'checkpoints', 'step-0000004')); // no config.json: not a checkpoint
    expect(listCheckpoints(run).map((d) => d.split('/').at(-1))).toEqual(['step-0000001', 'step-0000002']);
    expect(listCheckpoints(run, { training: true }).map((d) => d.split('/').at(-1))).toEqual(['step-0000002']);
    expect(locateCheckpoint(run)).toEqual({ dir: join(run, 'checkpoints', 'step-0000002'), runDir: run });
    expect(locateCheckpoint(join(run, 'checkpoints', 'step-0000001')).runDir).toBe(run);
    expect(() => locateCheckpoint(join(run, 'checkpoints'))).toThrow(/not a checkpoint \(no config\.json\) nor a run folder/);
  });

  it('discovers shards from the index and checks each exists', () => {
    const dir = scratch();
    expect(() => weightFiles(dir)).toThrow(`${join(dir, 'model.safetensors')}: weights file not found`);
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: shardFileName(1, 2), b: shardFileName(2, 2) } }));
    writeFileSync(join(dir, shardFileName(1, 2)), '');
    expect(() => weightFiles(dir)).toThrow(`${join(dir, shardFileName(2, 2))}: weights file not found`);
    writeFileSync(join(dir, shardFileName(2, 2)), '');
    expect(weightFiles(dir)).toEqual({ index: 'model.safetensors.index.json', files: [shardFileName(1, 2), shardFileName(2, 2)], weightMap: { a: shardFileName(1, 2), b: shardFileName(2, 2) } });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../elsewhere.safetensors' } }));
    expect(() => weightFiles(dir)).toThrow(/must be a file in the same folder/);
  });
});

const step = (n: number): StepRecord => ({ step: n, totalSteps: 4, loss: 5 - n, lr: 1e-3, gradNorm: 1, clipped: false, tokens: 10, tokensPerSecond: 100, flopsPerSecond: 1e9, elapsed: n });

describe('run records', () => {
  it('appends events, and on resume cuts them back to the resumed step', () => {
    const run = scratch();
    const log = MetricsLog.open(run);
    for (let n = 1; n <= 3; n++) log.append('step', step(n));
    log.append('eval', { step: 2, loss: 3, perplexity: 20, accuracy: 0.1, tokens: 64 });
    log.append('done', { reason: 'interrupted', step: 3, eval: null, checkpoint: null });
    log.close();
    expect(readMetrics(run).map((e) => e.event)).toEqual(['step', 'step', 'step', 'eval', 'done']);
    const resumed = MetricsLog.open(run, { resumeStep: 2 });
    resumed.append('step', step(3));
    resumed.close();
    const events = readMetrics(run);
    expect(events.map((e) => `${e.event}@${'step' in e ? e.step : ''}`)).toEqual(['step@1', 'step@2', 'eval@2', 'step@3']);
    expect(typeof events[0]!.time).toBe('string');
  });

  it('skips a cut last line and names the line of a corrupt one', () => {
    const run = scratch();
    writeFileSync(join(run, 'metrics.jsonl'), `${JSON.stringify({ event: 'step', ...step(1) })}\n{"event":"st`);
    expect(readMetrics(run)).toHaveLength(1);
    writeFileSync(join(run, 'metrics.jsonl'), `{"event":"st\n${JSON.stringify({ event: 'step', ...step(1) })}\n`);
    expect(() => readMetrics(run)).toThrow(`${join(run, 'metrics.jsonl')}:1: not a JSON line`);
  });

  it('writes and reads run.json, trainer_state.json and the history up to a checkpoint', () => {
    const run = scratch();
    writeRunRecord(run, { settings: { lr: 0.003, data: null }, engine: { engine: 'cpu' }, parameters: { total: 10, nonEmbedding: 4 }, started: '2026-12-01T00:00:00.000Z' });
    expect(readRunRecord(run)).toEqual({ format: 1, settings: { lr: 0.003, data: null }, engine: { engine: 'cpu' }, parameters: { total: 10, nonEmbedding: 4 }, started: '2026-12-01T00:00:00.000Z' });
    const log = MetricsLog.open(run);
    for (let n = 1; n <= 4; n++) log.append('step', step(n));
    log.append('eval', { step: 2, loss: 3, perplexity: 20, accuracy: 0.1, tokens: 64 });
    log.append('diagnostics', { step: 2, layers: [{ layer: 0, outputVariance: 1, gradNorm: 2, updateRatio: 0.01 }] });
    log.append('eval', { step: 4, loss: 2, perplexity: 7.4, accuracy: 0.2, tokens: 64 });
    log.close();
    const ckpt = join(run, 'checkpoints', checkpointName(2));
    mkdirSync(ckpt, { recursive: true });
    writeFileSync(ckpt + '/config.json', '{}');
    const lastEval = { step: 2, loss: 3, perplexity: 20, accuracy: 0.1, tokens: 64 };
    writeFileSync(join(ckpt, 'trainer_state.json'), trainerStateJson({ format: 2, step: 2, loader: { epoch: 0 }, optimizer: { kind: 'adam', step: 2 }, run: {}, lastEval }));
    expect(readTrainerState(ckpt).lastEval).toEqual(lastEval);
    const history = readTrainingHistory(locateCheckpoint(ckpt))!;
    expect(history.step).toBe(2);
    expect(history.steps.map((s) => s.step)).toEqual([1, 2]);
    expect(history.steps[0]).toEqual(step(1));
    expect(history.evals).toEqual([lastEval]);
    expect(history.diagnostics?.step).toBe(2);
    expect(history.settings).toEqual({ lr: 0.003, data: null });
  });

  it('reads the format-1 trainer state that carried the whole history, and refuses what is not one', () => {
    const dir = scratch();
    const evalRecord = { step: 5, loss: 2, perplexity: 7.4, accuracy: 0.2, tokens: 64 };
    writeFileSync(
      join(dir, 'trainer_state.json'),
      JSON.stringify({ format: 1, step: 5, loader: {}, optimizer: { kind: 'adamw', step: 5 }, run: { lr: 1 }, history: { steps: [step(1)], evals: [evalRecord] } }),
    );
    const state = readTrainerState(dir);
    expect(state).toEqual({ format: 2, step: 5, loader: {}, optimizer: { kind: 'adamw', step: 5 }, run: { lr: 1 }, lastEval: evalRecord });
    expect(readFileSync(join(dir, 'trainer_state.json'), 'utf8')).toContain('history'); // reading never rewrites
    writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({ format: 7, step: 1 }));
    expect(() => readTrainerState(dir)).toThrow(`${join(dir, 'trainer_state.json')}: not a deepen trainer state (format 7)`);
  });

  it('writes prune and analysis reports and reads them back', () => {
    const dir = scratch();
    const stage = { layers: 4, perplexity: 12.5, clozeAccuracy: null };
    writeFileSync(join(dir, 'prune_report.json'), pruneReportJson({ source: 'hf:a/b@main', plan: { remove: [2], method: 'layers', detail: {} }, depths: 'keep', healSteps: 0, before: stage, afterPruning: { ...stage, layers: 3 }, afterHealing: null }));
    expect(readPruneReport(dir)?.afterPruning.layers).toBe(3);
    expect(readPruneReport(scratch())).toBeNull();
    const result = { scheme: 'lns', layers: 2, perplexity: { loss: 1, perplexity: 2.7, tokens: 10 }, cloze: null, multipleChoice: null, depth: { layers: [], angularAllTokens: [], angularLastToken: [], tokens: 0 }, removal: [] } as AnalysisResult;
    writeAnalysisReportJson(dir, [{ name: 'lns', checkpoint: '/runs/x', result }]);
    expect(readAnalysisReport(dir)).toHaveLength(1);
    expect(analysisEntryFor(join(dir, 'report.json'), '/runs/x')).toEqual(result);
    expect(() => analysisEntryFor(dir, '/runs/y')).toThrow(/has no entry for \/runs\/y \(it analyzed \/runs\/x\)/);
  });
});
