import { initBackend } from '@deepen/backend';
import { BatchIterator, SequenceSet, trainTokenizer, type Tokenizer, type TokenizedSplit } from '@deepen/data';
import { LlamaModel, makeConfig, saveCheckpoint } from '@deepen/models';
import { Trainer } from '@deepen/trainer';

const TEXTS = Array.from({ length: 48 }, (_, i) => `Speech number ${i}: the people of the union ask for peace, trade and ${i % 7} new roads across the states.`);

function split(tokenizer: Tokenizer, texts: string[]): TokenizedSplit {
  const docs = texts.map((t) => tokenizer.encode(t));
  const offsets = new Float64Array(docs.length + 1);
  docs.forEach((d, i) => (offsets[i + 1] = offsets[i]! + d.length));
  return { tokens: Uint32Array.from(docs.flat()), offsets };
}

export interface TrainedRun {
  runDir: string;
  checkpoint: string;
  tokenizer: Tokenizer;
  /** The trained model, still alive, for exports. */
  model: LlamaModel;
}

/**
 * A real training run, as `pretrain train` lays it out: a 3-layer model trained for 4 steps by
 * the real Trainer (checkpoints with trainer_state.json and optimizer state, tokenizer.json), a
 * metrics.jsonl of its events and a run.json, both written by the trainer. Its data path is absolute, as a user's would be.
 */
export async function trainedRun(runDir: string, norm = 'lns'): Promise<TrainedRun> {
  await initBackend({ engine: 'cpu' });
  const tokenizer = trainTokenizer({ name: 'speeches', train: TEXTS.map((text, i) => ({ id: String(i), text })), validation: [], fingerprint: 'speeches' }, { vocabSize: 300 });
  const { bos, eos } = tokenizer.special;
  const model = LlamaModel.create(
    makeConfig({ vocab_size: tokenizer.vocabSize, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32, bos_token_id: bos, eos_token_id: eos, deepen: { norm_scheme: norm } }),
    { seed: 1 },
  );
  const packing = { mode: 'packed' as const, seqLen: 16, bos, eos: eos!, pad: eos! };
  const settings = { preset: 'tiny', norm, steps: 4, 'batch-size': 2, 'seq-len': 16, lr: 3e-3, schedule: 'cosine', warmup: 1, optimizer: 'adam', 'weight-decay': 0, 'grad-clip': 0, seed: 0, data: '/home/someone/private/speeches.jsonl' };
  const trainer = new Trainer(
    { model, train: new BatchIterator(new SequenceSet(split(tokenizer, TEXTS.slice(0, 40)), packing), 2, { seed: 0 }), validation: new SequenceSet(split(tokenizer, TEXTS.slice(40)), packing) },
    { steps: 4, lr: 3e-3, warmup: 1, schedule: 'cosine', evalEvery: 2, evalTokens: 64, diagnosticsEvery: 2, saveEvery: 2, outDir: runDir, files: { 'tokenizer.json': tokenizer.serialize() }, runConfig: settings },
  );
  const result = await trainer.run();
  trainer.dispose();
  return { runDir, checkpoint: result.checkpoint!, tokenizer, model };
}

/** The model saved as a plain checkpoint folder (optionally sharded or folded), with its tokenizer. */
export async function saveExport(run: TrainedRun, dir: string, options: { maxShardBytes?: number; fold?: boolean } = {}): Promise<string> {
  await saveCheckpoint(run.model, dir, { ...options, files: { 'tokenizer.json': run.tokenizer.serialize() } });
  return dir;
}
