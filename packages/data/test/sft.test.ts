import { describe, expect, it } from 'vitest';
import { BatchIterator, encodeChatPrompt, encodeCompletionPrompt, encodeSftRecord, sequentialBatches, SftSequences, Tokenizer, trainByteLevelBpe, type SftSegment } from '../src/index.js';

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
