import { encodeCompletionPrompt, type Tokenizer } from '@deepen/data';
import { evaluateLoss } from '@deepen/trainer';
import { existsSync, readFileSync } from 'node:fs';
import { configFromJson, familyOf, forwardFlopsPerToken, generate, parameterCountOf, presetConfig, PRESETS, readCheckpointConfig, schemeOf, trainingFlopsPerToken, type LlamaConfig, type LlamaModel } from '@deepen/models';
import { CHECKPOINT_HELP, checkpointDir, openCheckpoint } from '../checkpoints.js';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import { asFlagError, checkNorm, ENGINE_FLAGS, evalCorpus, schemeNames, sequencesFor, startEngine, tokenized, tokenizerAt } from '../setup.js';

/** Model and tokenizer of a checkpoint, run folder or hf: reference; --tokenizer replaces the checkpoint's. */
async function open(path: string | undefined, command: string, tokenizerFlag: unknown): Promise<{ model: LlamaModel; tokenizer: Tokenizer }> {
  if (!path) throw new UsageError(`${command} needs a checkpoint or run folder, e.g. pretrain ${command} runs/<run>`);
  const dir = await checkpointDir(path);
  if (tokenizerFlag === undefined) return openCheckpoint(dir);
  const { model } = openCheckpoint(dir, { tokenizer: false });
  return { model, tokenizer: tokenizerAt(String(tokenizerFlag)) };
}

/** A checkpoint's (or run's, or hf: model's) config, or a bare config.json to size before training. */
async function configOf(arg: string): Promise<LlamaConfig> {
  const bare = arg.endsWith('.json') ? arg : null;
  if (bare) {
    if (!existsSync(bare)) throw new UsageError(`${bare}: file not found`);
    try {
      return configFromJson(JSON.parse(readFileSync(bare, 'utf8')), bare);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  const dir = await checkpointDir(arg);
  try {
    return readCheckpointConfig(dir);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

const INFO_FLAGS: Record<string, FlagSpec> = {
  preset: { type: 'string', value: 'NAME', default: 'small', description: `model shape without a checkpoint: ${Object.keys(PRESETS).join(', ')}` },
  norm: { type: 'string', value: 'SCHEME', default: 'lns', description: 'normalization scheme' },
  'vocab-size': { type: 'int', min: 1, default: 32000, description: 'vocabulary size without a checkpoint' },
  'seq-len': { type: 'int', min: 1, default: 256, description: 'sequence length for the FLOP count' },
  json: { type: 'bool', description: 'print JSON' },
  ...ENGINE_FLAGS,
};

export async function infoCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('info', argv, INFO_FLAGS, 1);
  if (values.help) {
    process.stdout.write(helpText('pretrain info [CHECKPOINT] [options]', `Show a model: family, config, parameter count, FLOPs per token, and the engine that would run it. ${CHECKPOINT_HELP} A bare config.json is sized without weights.`, INFO_FLAGS));
    return 0;
  }
  const lines: string[] = [];
  const engine = await startEngine(values, (l) => lines.push(l));
  // Only config.json is read: sizing a 7B checkpoint needs none of its 14 GB of weights.
  let config: LlamaConfig;
  if (positionals[0]) config = await configOf(positionals[0]);
  else {
    if (!PRESETS[String(values.preset)]) throw new UsageError(`--preset must be one of ${Object.keys(PRESETS).join(', ')}, got '${values.preset}'`);
    checkNorm(String(values.norm), PRESETS[String(values.preset)]!.num_hidden_layers);
    config = presetConfig(String(values.preset), { vocab_size: Number(values['vocab-size']), deepen: { norm_scheme: String(values.norm) } });
  }
  const scheme = schemeOf(config);
  const seqLen = Number(values['seq-len']);
  const count = parameterCountOf(config);
  const info = {
    config,
    family: familyOf(config).architecture,
    scheme: scheme.name,
    stockRuntimeCompatible: scheme.foldable,
    parameters: count,
    trainingFlopsPerToken: trainingFlopsPerToken(config, seqLen),
    forwardFlopsPerToken: forwardFlopsPerToken(config, seqLen),
    seqLen,
    engine,
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    return 0;
  }
  const c = config;
  const extras = [
    c.head_dim * c.num_attention_heads !== c.hidden_size ? `head_dim ${c.head_dim}` : '',
    c.rope_scaling ? `rope ${c.rope_scaling.rope_type} x${c.rope_scaling.factor}` : '',
    Object.values(familyOf(c).biases(c)).some(Boolean) ? 'biases' : '',
    familyOf(c).qkNorm ? 'q/k norms' : '',
    familyOf(c).windows(c).some((w) => w !== null) ? `sliding window ${c.sliding_window}` : '',
  ].filter(Boolean);
  process.stdout.write(
    [
      `family      ${c.model_type} (${info.family})${extras.length > 0 ? `: ${extras.join(', ')}` : ''}`,
      `model       ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ${c.num_attention_heads} heads (${c.num_key_value_heads} kv), MLP ${c.intermediate_size}, vocab ${c.vocab_size}, context ${c.max_position_embeddings}`,
      `scheme      ${info.scheme}${info.stockRuntimeCompatible ? ` (exports as a plain Pre-LN ${c.model_type} model)` : ' (only deepen reproduces it)'}`,
      `parameters  ${count.total.toLocaleString('en-US')} (${count.nonEmbedding.toLocaleString('en-US')} non-embedding)`,
      `FLOPs/token ${(info.trainingFlopsPerToken / 1e6).toFixed(1)}M training, ${(info.forwardFlopsPerToken / 1e6).toFixed(1)}M forward at ${seqLen} tokens`,
      ...lines,
    ].join('\n') + '\n',
  );
  return 0;
}

const EVAL_FLAGS: Record<string, FlagSpec> = {
  data: { type: 'string', value: 'NAME|PATHS', default: 'sotu', description: "sotu (the built-in validation split), moby-dick, or .txt/.jsonl files or folders" },
  tokenizer: { type: 'string', value: 'PATH', description: "tokenizer.json (default: the checkpoint's)" },
  'seq-len': { type: 'int', min: 8, default: 128, description: 'tokens per sequence' },
  'max-tokens': { type: 'int', min: 1, default: 65_536, description: 'evaluate at most this many tokens' },
  'batch-size': { type: 'int', min: 1, default: 8, description: 'sequences per batch' },
  json: { type: 'bool', description: 'print JSON' },
  ...ENGINE_FLAGS,
};

export async function evalCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('eval', argv, EVAL_FLAGS, 1);
  if (values.help) {
    process.stdout.write(helpText('pretrain eval CHECKPOINT [options]', `Perplexity of a checkpoint on a corpus (non-overlapping windows). ${CHECKPOINT_HELP}`, EVAL_FLAGS));
    return 0;
  }
  const quietLog = values.json ? () => {} : (l: string) => process.stdout.write(`${l}\n`);
  await startEngine(values, quietLog);
  const { model, tokenizer } = await open(positionals[0], 'eval', values.tokenizer);
  try {
    const corpus = evalCorpus(String(values.data));
    const tokens = await tokenized(corpus, tokenizer, quietLog);
    const set = sequencesFor(tokens.validation, tokenizer, Number(values['seq-len']), 'packed');
    if (set.count === 0) throw new UsageError(`--data ${values.data}: not enough text for one sequence of ${values['seq-len']} tokens`);
    const { loss, tokens: count } = evaluateLoss(model, set, { maxTokens: Number(values['max-tokens']), batchSize: Number(values['batch-size']) });
    const result = { corpus: corpus.name, tokens: count, loss, perplexity: Math.exp(loss) };
    process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : `${corpus.name}: perplexity ${result.perplexity.toFixed(2)} (loss ${loss.toFixed(4)}) on ${count.toLocaleString('en-US')} tokens\n`);
    return 0;
  } finally {
    model.dispose();
  }
}

const GENERATE_FLAGS: Record<string, FlagSpec> = {
  prompt: { type: 'string', value: 'TEXT', default: 'The state of the Union', description: 'text to continue' },
  'max-tokens': { type: 'int', min: 1, default: 60, description: 'new tokens at most' },
  temperature: { type: 'float', min: 0, default: 0.8, description: '0 decodes greedily' },
  'top-k': { type: 'int', min: 0, default: 40, description: 'sample among the k most likely tokens (0: all)' },
  'top-p': { type: 'float', min: 0, exclusiveMin: true, max: 1, default: 0.95, description: 'nucleus sampling mass' },
  seed: { type: 'int', min: 0, default: 0, description: 'sampling seed' },
  chat: { type: 'bool', description: "treat --prompt as a user message and answer it through the model's own chat template (tokenizer_config.json)" },
  system: { type: 'string', value: 'TEXT', description: 'with --chat: a system message before the prompt' },
  tokenizer: { type: 'string', value: 'PATH', description: "tokenizer.json or a folder with one (default: the checkpoint's)" },
  ...ENGINE_FLAGS,
};

export async function generateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('generate', argv, GENERATE_FLAGS, 1);
  if (values.help) {
    process.stdout.write(helpText('pretrain generate CHECKPOINT [options]', `Continue a prompt with a checkpoint, or answer it as a chat turn (--chat) through the model's chat template. ${CHECKPOINT_HELP}`, GENERATE_FLAGS));
    return 0;
  }
  if (values.system !== undefined && !values.chat) throw new UsageError('--system needs --chat');
  await startEngine(values, () => {});
  const { model, tokenizer } = await open(positionals[0], 'generate', values.tokenizer);
  try {
    const text = String(values.prompt);
    if (text.length === 0) throw new UsageError('--prompt is empty');
    let prompt: number[];
    if (values.chat) {
      if (tokenizer.chatTemplate === null) throw new UsageError(`--chat: ${positionals[0]} has no chat template (tokenizer_config.json's chat_template)`);
      const messages = [...(values.system !== undefined ? [{ role: 'system', content: String(values.system) }] : []), { role: 'user', content: text }];
      prompt = asFlagError('chat', () => tokenizer.encodeChat(messages, { addGenerationPrompt: true }));
    } else {
      // Framed as the model saw text in training: with its BOS where it has one.
      prompt = encodeCompletionPrompt(tokenizer, text);
    }
    const room = model.config.max_position_embeddings - prompt.length;
    if (room < 1) throw new UsageError(`--prompt is ${prompt.length} tokens, the model's context is ${model.config.max_position_embeddings}`);
    if (!values.chat) process.stdout.write(text);
    // A reply ends at the tokenizer's end of turn as well as at the model's end-of-sequence ids.
    const stops = [...new Set([...(model.config.eos_token_ids ?? (model.config.eos_token_id === null ? [] : [model.config.eos_token_id])), ...(tokenizer.special.eos === null ? [] : [tokenizer.special.eos])])];
    const produced: number[] = [];
    let printed = '';
    generate(model, prompt, {
      maxNewTokens: Math.min(Number(values['max-tokens']), room),
      temperature: Number(values.temperature),
      topK: Number(values['top-k']),
      topP: Number(values['top-p']),
      seed: Number(values.seed),
      eosTokenId: stops,
      onToken: (token) => {
        // Print as text arrives; decode the whole continuation so multi-byte characters stay intact.
        produced.push(token);
        const text = tokenizer.decode(produced, { skipSpecialTokens: true });
        if (!text.endsWith('\uFFFD')) {
          process.stdout.write(text.slice(printed.length));
          printed = text;
        }
      },
    });
    process.stdout.write('\n');
    return 0;
  } finally {
    model.dispose();
  }
}

export { schemeNames };
