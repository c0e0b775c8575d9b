import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_ENV_VAR, ENGINE_ORDER, initBackend, type BackendReport } from '@deepen/backend';
import { cachedTokenizer, loadCorpus, mobyDick, SequenceSet, stateOfTheUnion, tokenizeCorpus, Tokenizer, type Corpus, type PackingMode, type TokenizedCorpus } from '@deepen/data';
import { configFromJson, presetConfig, PRESETS, type LlamaConfig } from '@deepen/models';
import { knownSchemeParts, resolveScheme } from '@deepen/norms';
import { UsageError, type FlagSpec, type FlagValues } from './flags.js';

/** Flags every command that loads an engine shares. */
export const ENGINE_FLAGS: Record<string, FlagSpec> = {
  backend: { type: 'string', value: 'NAME', description: `TensorFlow.js engine: auto, ${ENGINE_ORDER.join(', ')} (default: $${BACKEND_ENV_VAR} or auto)` },
};

export async function startEngine(values: FlagValues, log: (line: string) => void): Promise<BackendReport> {
  try {
    const report = await initBackend(values.backend === undefined ? {} : { engine: String(values.backend), engineSource: '--backend' });
    const simd = report.simd === null ? '' : report.simd ? ', SIMD' : ', no SIMD';
    log(`engine: ${report.engine} (${report.device}; ${report.threads} thread${report.threads === 1 ? '' : 's'}${simd})`);
    // The full reasons (with paths) are in run.json; a terminal line keeps the gist.
    for (const r of report.rejected) log(`  skipped ${r.engine}: ${r.reason.replace(/ \(.*\)$/s, '')}`);
    // How to make the engine faster here (e.g. OpenBLAS on generic kernels) is worth a line.
    for (const hint of report.hints) log(`  hint: ${hint}`);
    return report;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Builds the corpus from --data (user files) or the built-in State of the Union. */
export function corpusFrom(values: FlagValues): Corpus {
  if (values.data === undefined) return stateOfTheUnion();
  return loadCorpus(String(values.data).split(','), {
    ...(values['text-field'] !== undefined ? { textField: String(values['text-field']) } : {}),
    seed: Number(values.seed ?? 0),
  });
}

/** A corpus given by name for evaluation: sotu (its validation split), moby-dick, or a path. */
export function evalCorpus(name: string): Corpus {
  if (name === 'sotu') return stateOfTheUnion();
  if (name === 'moby-dick') {
    const docs = mobyDick();
    return { name: 'moby-dick', train: [], validation: docs, fingerprint: `moby-dick-${docs.length}` };
  }
  const c = loadCorpus(name.split(','), { validationFraction: 0 });
  return { ...c, validation: c.train, train: [] };
}

/**
 * Runs `work` on what a flag names (a file to read, a value to check); what is wrong with it
 * (missing, malformed, invalid) is the user's mistake: a UsageError naming the flag, exit 2.
 */
export function asFlagError<T>(flag: string, work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw new UsageError(`--${flag}: ${(error as Error).message}`);
  }
}

/** A --tokenizer value: a tokenizer.json, or a folder holding one (with its tokenizer_config.json). */
export function tokenizerAt(path: string): Tokenizer {
  return asFlagError('tokenizer', () => (existsSync(path) && statSync(path).isDirectory() ? Tokenizer.fromDir(path) : Tokenizer.fromFile(path)));
}

export function tokenizerFrom(values: FlagValues, corpus: Corpus, log: (line: string) => void): Tokenizer {
  if (values.tokenizer !== undefined) return tokenizerAt(String(values.tokenizer));
  const started = performance.now();
  const { tokenizer, path, trained } = cachedTokenizer(corpus, { vocabSize: Number(values['vocab-size']) });
  log(trained ? `tokenizer: trained ${tokenizer.vocabSize}-token byte-level BPE on ${corpus.name} in ${((performance.now() - started) / 1000).toFixed(1)}s (cached at ${path})` : `tokenizer: ${path}`);
  return tokenizer;
}

export async function tokenized(corpus: Corpus, tokenizer: Tokenizer, log: (line: string) => void): Promise<TokenizedCorpus> {
  const started = performance.now();
  const result = await tokenizeCorpus(corpus, tokenizer);
  const count = (n: number) => n.toLocaleString('en-US');
  log(
    `data: ${corpus.name}, ${count(result.train.tokens.length)} training and ${count(result.validation.tokens.length)} validation tokens` +
      (result.fromCache ? ' (cached)' : ` (tokenized in ${((performance.now() - started) / 1000).toFixed(1)}s)`),
  );
  return result;
}

export function sequencesFor(split: TokenizedCorpus['train'], tokenizer: Tokenizer, seqLen: number, mode: PackingMode): SequenceSet {
  const eos = tokenizer.special.eos;
  if (eos === null) throw new UsageError('the tokenizer has no end-of-sequence token (</s>, <|endoftext|>, ...); packing needs one');
  return new SequenceSet(split, { mode, seqLen, bos: tokenizer.special.bos, eos, pad: tokenizer.special.pad ?? eos });
}

/** Checks a --norm value now, so a typo fails before any work starts. */
export function checkNorm(norm: string, layers: number, mixPostLayers?: number): void {
  asFlagError('norm', () => resolveScheme(norm, layers, mixPostLayers === undefined ? {} : { mixPostLayers }));
}

export function schemeNames(): string {
  return knownSchemeParts().map((p) => p.name).join(', ');
}

/**
 * Resolves the model shape from --config (a config.json) or --preset and checks --norm
 * against it before any slow work; the returned function sizes it to the tokenizer.
 */
export function planModel(values: FlagValues, seqLen: number): (tokenizer: Tokenizer) => LlamaConfig {
  const norm = String(values.norm);
  const deepen = { norm_scheme: norm, ...(values['mix-post-layers'] !== undefined ? { mix_post_layers: Number(values['mix-post-layers']) } : {}) };
  let base: (ids: Partial<LlamaConfig>) => LlamaConfig;
  let layers: number;
  if (values.config !== undefined) {
    const path = String(values.config);
    const file = existsSync(join(path, 'config.json')) ? join(path, 'config.json') : path;
    if (!existsSync(file)) throw new UsageError(`--config: ${file} not found`);
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new UsageError(`--config: ${file} is not valid JSON (${(error as Error).message})`);
    }
    layers = Number(json.num_hidden_layers);
    base = (ids) => configFromJson({ ...json, ...ids, max_position_embeddings: Math.max(Number(json.max_position_embeddings ?? 0), seqLen), deepen }, file);
  } else {
    const preset = String(values.preset);
    if (!PRESETS[preset]) throw new UsageError(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got '${preset}'`);
    layers = PRESETS[preset]!.num_hidden_layers;
    base = (ids) => presetConfig(preset, { ...ids, max_position_embeddings: Math.max(1024, seqLen), deepen });
  }
  checkNorm(norm, layers, deepen.mix_post_layers);
  return (tokenizer) => {
    try {
      return base({ vocab_size: tokenizer.vocabSize, bos_token_id: tokenizer.special.bos, eos_token_id: tokenizer.special.eos, pad_token_id: tokenizer.special.pad });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  };
}
