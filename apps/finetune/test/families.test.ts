import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@deepen/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, COLORS, finished, jsonl, keysFile, makeBaseModel, startService, tempDir, waitForJob, type Client, type ServiceProcess } from './helpers.js';

/**
 * A Qwen2 base model (q/k/v biases, tied embeddings) with a ChatML chat template in its
 * tokenizer_config.json, as Qwen's instruct checkpoints ship: the service fine-tunes it on
 * conversations rendered by that template and keeps it a Qwen2 checkpoint with its template.
 */
const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

let service: ServiceProcess;
let api: Client;
let dataDir: string;

beforeAll(async () => {
  dataDir = tempDir('family');
  await makeBaseModel(join(dataDir, 'models', 'tiny-qwen2'), {
    family: { model_type: 'qwen2', tie_word_embeddings: true },
    specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
    files: { 'tokenizer_config.json': JSON.stringify({ bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', chat_template: CHATML }) },
  });
  const key = keysFile(join(dataDir, 'keys.json'), ['acme']).acme!;
  service = await startService(dataDir, { args: ['--keys-file', join(dataDir, 'keys.json')] });
  api = client(service.url, key);
});

afterAll(async () => {
  expect(await service.stop()).toBe(0);
});

describe('a Qwen2 base model with its own chat template', () => {
  it('fine-tunes on conversations through the template and stays a Qwen2 checkpoint', async () => {
    const tokenizer = Tokenizer.fromDir(join(dataDir, 'models', 'tiny-qwen2'));
    expect(tokenizer.special).toMatchObject({ bos: null, eos: tokenizer.tokenToId('<|im_end|>') });
    const chats = COLORS.map((p) => ({ messages: [{ role: 'user', content: p.prompt }, { role: 'assistant', content: p.completion.trim() }] }));
    const file = (await api.upload(jsonl(chats), 'chats.jsonl')).body;
    const created = await api.post('/v1/fine_tuning/jobs', { model: 'tiny-qwen2', training_file: file.id, hyperparameters: { n_epochs: 100, batch_size: 2, learning_rate: 2e-2, warmup: 3 }, seed: 1 });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const done = await waitForJob(api, created.body.id, finished);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    // The replies come back as trained, ended by the template's end of turn (the config's eos).
    for (const [i, p] of COLORS.entries()) {
      const r = await api.post('/v1/chat/completions', { model: done.fine_tuned_model, messages: chats[i]!.messages.slice(0, 1), max_tokens: 8, temperature: 0 });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.choices[0], p.prompt).toMatchObject({ message: { role: 'assistant', content: p.completion.trim() }, finish_reason: 'stop' });
    }
    const modelDir = join(dataDir, 'jobs', done.id, 'model');
    const config = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
    expect(config).toMatchObject({ model_type: 'qwen2', architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: true });
    expect(JSON.parse(readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8')).chat_template).toBe(CHATML);
  });
});
