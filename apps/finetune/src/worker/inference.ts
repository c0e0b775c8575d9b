// The completions process, forked by the service on the first completion request. It keeps
// the most recently used models loaded and answers one request at a time, so generation never
// blocks the API's event loop.
import { initBackend } from '@deepen/backend';
import { encodeChatPrompt, encodeCompletionPrompt, Tokenizer } from '@deepen/data';
import { generate, loadCheckpoint, type LlamaModel } from '@deepen/models';
import { describeError } from './ipc.js';
import type { CompletionJob, CompletionOutcome } from './protocol.js';

const LOADED_MODELS = 2;
const loaded = new Map<string, { model: LlamaModel; tokenizer: Tokenizer }>();

function open(dir: string): { model: LlamaModel; tokenizer: Tokenizer } {
  const hit = loaded.get(dir);
  if (hit) {
    loaded.delete(dir);
    loaded.set(dir, hit); // most recently used last
    return hit;
  }
  // The folder loader honours a checkpoint's tokenizer_config.json: its chat template and special tokens.
  const entry = { tokenizer: Tokenizer.fromDir(dir), model: loadCheckpoint(dir) };
  loaded.set(dir, entry);
  while (loaded.size > LOADED_MODELS) {
    const [oldest, value] = loaded.entries().next().value as [string, { model: LlamaModel }];
    value.model.dispose();
    loaded.delete(oldest);
  }
  return entry;
}

function complete(job: CompletionJob): CompletionOutcome {
  const { model, tokenizer } = open(job.modelDir);
  const prompt = job.input.kind === 'text' ? encodeCompletionPrompt(tokenizer, job.input.prompt) : encodeChatPrompt(tokenizer, job.input.messages);
  const field = job.input.kind === 'text' ? 'prompt' : 'messages';
  const context = model.config.max_position_embeddings;
  if (prompt.length === 0) return { id: job.id, ok: false, status: 400, message: 'The prompt is empty.', param: field, code: 'invalid_value' };
  if (prompt.length + job.maxTokens > context) {
    return {
      id: job.id,
      ok: false,
      status: 400,
      message: `This model's context is ${context} tokens; the ${field} has ${prompt.length} tokens and max_tokens asks for ${job.maxTokens} more.`,
      param: prompt.length >= context ? field : 'max_tokens',
      code: 'context_length_exceeded',
    };
  }
  const eos = tokenizer.special.eos;
  const result = generate(model, prompt, { maxNewTokens: job.maxTokens, temperature: job.temperature, topP: job.topP, seed: job.seed, eosTokenId: eos });
  const tokens = result.finishReason === 'eos' ? result.tokens.slice(0, -1) : result.tokens;
  return {
    id: job.id,
    ok: true,
    text: tokenizer.decode(tokens, { skipSpecialTokens: true }),
    promptTokens: prompt.length,
    completionTokens: result.tokens.length,
    finishReason: result.finishReason === 'eos' ? 'stop' : 'length',
  };
}

async function main(): Promise<void> {
  const engine = process.argv[2] ?? 'auto';
  if (!process.send) {
    process.stderr.write('finetune inference worker: started by the service (child_process.fork)\n');
    process.exit(2);
  }
  await initBackend({ engine, engineSource: 'the service --backend flag' });
  process.on('message', (job: CompletionJob) => {
    let outcome: CompletionOutcome;
    try {
      outcome = complete(job);
    } catch (error) {
      // The message may name the model's files on the server: it goes to the service's log (this
      // process's stderr), the client gets its kind.
      process.stderr.write(`completions process: generation failed: ${(error as Error)?.stack ?? String(error)}\n`);
      outcome = { id: job.id, ok: false, status: 500, message: `Generation failed on ${describeError(error, { [job.modelDir]: 'the model' })}; the service's log has the details.`, param: null, code: 'generation_failed' };
    }
    process.send!(outcome);
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ ready: true });
}

await main();
