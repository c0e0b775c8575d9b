// The training process of one fine-tuning job, forked by the service. It reports through IPC
// messages, each event first appended to the job's journal; the service owns the database.
// Started again after a crash, it continues from the newest checkpoint in the job's run folder.
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { initBackend } from '@deepen/backend';
import { BatchIterator, encodeSftRecord, SftSequences, Tokenizer } from '@deepen/data';
import { loadCheckpoint, saveCheckpoint, type LlamaModel } from '@deepen/models';
import { CHECKPOINTS_DIR, readTrainingHistory } from '@deepen/core';
import { listTrainingCheckpoints, loadTrainingState, Trainer, TrainingDivergedError, type EvalEvent, type LoadedTrainingState, type StepEvent } from '@deepen/trainer';
import { nowSeconds } from '../ids.js';
import { JournalWriter } from '../journal.js';
import { stepsPerEpoch } from '../plan.js';
import { readTrainingFile, TrainingFileError } from '../training-file.js';
import { describeError, readSpec, runWorker, send as sendMessage } from './ipc.js';
import type { CheckpointReport, JournaledMessage, TrainingCommand, TrainingMessage, TrainingSpec } from './protocol.js';

const send = (message: TrainingMessage) => sendMessage(message);

/** Opened by main before anything is reported. */
let journal: JournalWriter | undefined;
/** Tells this run's log events apart from those of the job's other runs. */
const RUN = randomBytes(6).toString('hex');
let logs = 0;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Reports an event: appended to the journal first (so that it survives a service that is
 * killed before reading it), then sent. `key` names what it reports; see JournaledMessage.
 */
function report(key: string, message: DistributiveOmit<JournaledMessage, 'key' | 'time'>): Promise<void> {
  const journaled = { key, time: nowSeconds(), ...message } as JournaledMessage;
  journal!.append(journaled);
  return send(journaled);
}

const log = (level: 'info' | 'warn' | 'error', message: string, data?: Record<string, unknown>) => report(`log-${RUN}-${++logs}`, { type: 'log', level, message, ...(data ? { data } : {}) });
const reportCheckpoint = (checkpoint: CheckpointReport) => report(`checkpoint-${checkpoint.step}`, { type: 'checkpoint', checkpoint });

/** A job failure with the code the job's error carries. */
class JobFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Reads and encodes a training file into masked sequences, reporting what truncation did. */
async function examplesOf(path: string, tokenizer: Tokenizer, maxSeqLen: number, label: 'training' | 'validation', report: boolean): Promise<SftSequences> {
  const lines: number[] = [];
  const encoded = [];
  try {
    for await (const { line, record } of readTrainingFile(path)) {
      lines.push(line);
      encoded.push(encodeSftRecord(tokenizer, record));
    }
  } catch (error) {
    if (error instanceof TrainingFileError) throw new JobFailure(`invalid_${label}_file`, `${label} file, ${error.message}`);
    throw error;
  }
  const pad = tokenizer.special.pad ?? (tokenizer.special.eos as number);
  const set = new SftSequences(encoded, { maxSeqLen, pad });
  if (set.untrained.length === set.count) {
    throw new JobFailure(`invalid_${label}_file`, `no ${label} example keeps a completion token within max_seq_len (${maxSeqLen} tokens); raise hyperparameters.max_seq_len or shorten the prompts`);
  }
  if (report && set.truncated.length > 0) {
    const longest = set.truncated.reduce((a, i) => ((set.lengths[i] as number) > (set.lengths[a] as number) ? i : a));
    await log('warn', `${set.truncated.length} of ${set.count} ${label} examples are longer than max_seq_len (${maxSeqLen} tokens) and were cut at the end; the longest has ${set.lengths[longest]} tokens (line ${lines[longest]}).`, {
      file: label,
      truncated: set.truncated.length,
      examples: set.count,
      max_seq_len: maxSeqLen,
      lines: set.truncated.slice(0, 100).map((i) => lines[i]),
    });
  }
  if (report && set.untrained.length > 0) {
    await log('warn', `${set.untrained.length} ${label} examples have no completion token left within max_seq_len (${maxSeqLen} tokens) and add nothing to the loss (first: line ${lines[set.untrained[0] as number]}).`, {
      file: label,
      untrained: set.untrained.length,
      lines: set.untrained.slice(0, 100).map((i) => lines[i]),
    });
  }
  return set;
}

/** A checkpoint's metrics, from the run's history (steps and evaluations up to it). */
function checkpointReport(step: number, dir: string, perEpoch: number, history: { steps: StepEvent[]; evals: EvalEvent[] }): CheckpointReport {
  const loss = history.steps.find((s) => s.step === step)?.loss ?? NaN;
  const evaluation = history.evals.find((e) => e.step === step) ?? null;
  return {
    step,
    dir,
    metrics: { step, epoch: Math.ceil(step / perEpoch), train_loss: loss, valid_loss: evaluation?.loss ?? null, valid_mean_token_accuracy: evaluation?.accuracy ?? null },
  };
}

async function run(spec: TrainingSpec, stop: { requested: boolean; trainer: Trainer | null }): Promise<void> {
  const engine = await initBackend({ engine: spec.engine, engineSource: 'the service --backend flag' });
  await log('info', `Training on the ${engine.engine} engine (${engine.device}, ${engine.threads} thread${engine.threads === 1 ? '' : 's'}).`, { engine: engine.engine, device: engine.device });

  const hp = spec.hyperparameters;
  let resume: LoadedTrainingState | null = null;
  if (listTrainingCheckpoints(spec.runDir).length > 0) {
    // A checkpoint being written when the service was killed is an unfinished temporary folder.
    const dir = join(spec.runDir, CHECKPOINTS_DIR);
    for (const name of readdirSync(dir)) if (name.startsWith('.')) rmSync(join(dir, name), { recursive: true, force: true });
    resume = loadTrainingState(spec.runDir);
  }
  const source = resume ? resume.dir : spec.baseModelDir;
  // The folder loader honours the model's tokenizer_config.json (chat template, special tokens).
  const tokenizer = Tokenizer.fromDir(source);
  const model: LlamaModel = resume ? resume.model : loadCheckpoint(spec.baseModelDir);
  try {
    const train = await examplesOf(spec.trainingFile, tokenizer, hp.max_seq_len, 'training', !resume);
    const validation = spec.validationFile === null ? null : await examplesOf(spec.validationFile, tokenizer, hp.max_seq_len, 'validation', !resume);
    const perEpoch = stepsPerEpoch(train.count, hp.batch_size);
    const totalSteps = hp.n_epochs * perEpoch;
    if (resume) {
      // The steps and evaluations up to the checkpoint are in the run's metrics.jsonl, which the trainer keeps.
      const history = readTrainingHistory({ dir: resume.dir, runDir: spec.runDir }) ?? { steps: [], evals: [] };
      await send({ type: 'checkpoints', checkpoints: listTrainingCheckpoints(spec.runDir).map((dir) => checkpointReport(Number(/step-(\d+)$/.exec(dir)![1]), dir, perEpoch, history)) });
      // Its event, again: a run killed right after writing the checkpoint never journaled it
      // (the service records one event per checkpoint however often it is reported).
      await reportCheckpoint(checkpointReport(resume.state.step, resume.dir, perEpoch, history));
      await log('info', `Resuming from the checkpoint at step ${resume.state.step} of ${totalSteps}.`, { step: resume.state.step, total_steps: totalSteps });
    } else {
      await log(
        'info',
        `Fine-tuning on ${train.count} examples (${train.tokensPerEpoch} trained tokens per epoch${validation ? `; ${validation.count} validation examples` : ''}): ` +
          `${hp.n_epochs} epochs of ${perEpoch} steps, batch ${hp.batch_size}, sequences of ${train.seqLen} tokens.`,
        { examples: train.count, trained_tokens_per_epoch: train.tokensPerEpoch, steps_per_epoch: perEpoch, total_steps: totalSteps, seq_len: train.seqLen },
      );
    }
    if (stop.requested) {
      await send({ type: 'stopped', step: resume?.state.step ?? 0, checkpoint: null });
      return;
    }

    const trainer = new Trainer(
      {
        model,
        train: new BatchIterator(train, hp.batch_size, { seed: spec.seed, ...(resume ? { state: resume.state.loader } : {}) }),
        validation,
        ...(resume ? { resume } : {}),
      },
      {
        steps: totalSteps,
        lr: hp.learning_rate,
        schedule: 'linear',
        warmup: hp.warmup,
        minLrRatio: 0,
        optimizer: 'adamw',
        weightDecay: 0,
        gradClip: 1,
        evalEvery: perEpoch,
        evalTokens: validation ? validation.count * validation.seqLen : 1,
        evalBatchSize: hp.batch_size,
        saveEvery: perEpoch,
        // Every epoch's checkpoint stays (each is a model users can try), plus stop checkpoints.
        keepLast: hp.n_epochs + 2,
        outDir: spec.runDir,
        // tokenizer.json with the tokenizer_config.json (etc.) it was loaded with, so checkpoints keep the chat template.
        files: tokenizer.files(),
        // Every event up to a checkpoint is durable before the checkpoint exists: a job resumes from it without a gap in its events.
        beforeCheckpoint: () => journal!.sync(),
        runConfig: { job: spec.jobId, hyperparameters: hp, seed: spec.seed },
      },
    );
    stop.trainer = trainer;
    if (stop.requested) trainer.requestStop();
    const pending: Array<Promise<void>> = [];
    // The trainer emits synchronously, between its steps: each event is journaled before the next step starts.
    trainer.on('step', (e) => {
      pending.push(report(`step-${e.step}`, { type: 'step', step: e.step, totalSteps: e.totalSteps, epoch: Math.ceil(e.step / perEpoch), loss: e.loss, lr: e.lr, tokens: e.tokens, tokensPerSecond: e.tokensPerSecond }));
    });
    trainer.on('eval', (e) => {
      pending.push(report(`validation-${e.step}`, { type: 'validation', step: e.step, epoch: Math.ceil(e.step / perEpoch), loss: e.loss, accuracy: e.accuracy, tokens: e.tokens }));
    });
    trainer.on('checkpoint', (e) => {
      pending.push(reportCheckpoint(checkpointReport(e.step, e.dir, perEpoch, trainer.history)));
    });
    try {
      const result = await trainer.run();
      await Promise.all(pending);
      if (result.reason === 'interrupted') {
        await send({ type: 'stopped', step: result.step, checkpoint: result.checkpoint ? checkpointReport(result.step, result.checkpoint, perEpoch, trainer.history) : null });
        return;
      }
      // The model users generate from: weights, config and tokenizer, without optimizer state.
      await saveCheckpoint(model, spec.modelDir, { files: tokenizer.files() });
      const trainedTokens = trainer.history.steps.reduce((n, s) => n + s.tokens, 0);
      await send({ type: 'succeeded', trainedTokens, modelDir: spec.modelDir, step: result.step });
    } finally {
      trainer.dispose();
    }
  } finally {
    model.dispose();
  }
}

/** The places on the server a training worker knows, by what they are to the tenant. */
const placesOf = (spec: TrainingSpec) => ({
  [spec.baseModelDir]: 'the base model',
  [spec.trainingFile]: 'the training file',
  ...(spec.validationFile ? { [spec.validationFile]: 'the validation file' } : {}),
  [dirname(spec.runDir)]: "the job's folder",
  [spec.runDir]: "the job's run folder",
  [spec.modelDir]: "the job's model folder",
  [spec.journal]: "the job's journal",
});

async function main(): Promise<number> {
  const spec = readSpec<TrainingSpec>('training');
  if (spec === null) return 2;
  const stop: { requested: boolean; trainer: Trainer | null } = { requested: false, trainer: null };
  process.on('message', (message: TrainingCommand) => {
    if (message?.type !== 'stop') return;
    stop.requested = true;
    stop.trainer?.requestStop();
  });
  // The service is gone (killed or crashed): stop now. When it starts again it resumes this
  // job from its newest checkpoint, which every write keeps complete.
  process.on('disconnect', () => process.exit(0));
  try {
    journal = JournalWriter.open(spec.journal);
    await run(spec, stop);
    return 0;
  } catch (error) {
    if (error instanceof JobFailure || error instanceof TrainingDivergedError) {
      // Messages made for the tenant: they name lines of the file and steps, never server paths.
      await send({ type: 'failed', code: error instanceof JobFailure ? error.code : 'training_diverged', message: error.message });
      return 1;
    }
    process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
    await send({
      type: 'failed',
      code: 'training_error',
      message: `training stopped on ${describeError(error, placesOf(spec))}; the service's log has the details`,
      detail: (error as Error)?.message ?? String(error),
    });
    return 1;
  } finally {
    journal?.close();
  }
}

await runWorker(main);
