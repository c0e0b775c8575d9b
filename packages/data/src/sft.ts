import type { SequenceSource } from './packing.js';
import type { Tokenizer } from './tokenizer.js';

/** A prompt and the completion the model should learn to write after it. */
export interface PromptCompletion {
  prompt: string;
  completion: string;
}

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** One supervised fine-tuning example: a prompt → completion pair or a conversation. */
export type SftRecord = PromptCompletion | { messages: ChatMessage[] };

/** A run of token ids; `loss` marks the ones the model learns to predict. */
export interface SftSegment {
  ids: number[];
  loss: boolean;
}

function requireEos(tokenizer: Tokenizer): number {
  const eos = tokenizer.special.eos;
  if (eos === null) throw new Error('the tokenizer has no end-of-sequence token (</s>, <|endoftext|>, ...); fine-tuning needs one to end completions');
  return eos;
}

const bosOf = (tokenizer: Tokenizer): number[] => (tokenizer.special.bos === null ? [] : [tokenizer.special.bos]);

/**
 * The chat template (Zephyr's): every message is `<|role|>\n{content}` followed by the
 * end-of-sequence token, messages are joined by a newline, and a reply is prompted with
 * `\n<|assistant|>\n`. Only assistant contents and their end-of-sequence token are trained.
 * Each piece is tokenized on its own, so a prompt built with `encodeChatPrompt` tokenizes
 * exactly like the training data.
 */
function chatSegments(tokenizer: Tokenizer, messages: ChatMessage[], generationPrompt: boolean): SftSegment[] {
  const eos = requireEos(tokenizer);
  const segments: SftSegment[] = [{ ids: bosOf(tokenizer), loss: false }];
  messages.forEach((m, i) => {
    const trained = m.role === 'assistant';
    segments.push({ ids: tokenizer.encode(`${i > 0 ? '\n' : ''}<|${m.role}|>\n`), loss: false });
    segments.push({ ids: [...tokenizer.encode(m.content), eos], loss: trained });
  });
  if (generationPrompt) segments.push({ ids: tokenizer.encode(`${messages.length > 0 ? '\n' : ''}<|assistant|>\n`), loss: false });
  return segments;
}

/**
 * Token segments of one example. Prompt → completion: `[bos] prompt` untrained, then
 * `completion eos` trained (prompt and completion are tokenized separately, so a completion
 * usually starts with a space). Conversations follow the chat template.
 */
export function encodeSftRecord(tokenizer: Tokenizer, record: SftRecord): SftSegment[] {
  if ('messages' in record) return chatSegments(tokenizer, record.messages, false);
  const eos = requireEos(tokenizer);
  return [
    { ids: [...bosOf(tokenizer), ...tokenizer.encode(record.prompt)], loss: false },
    { ids: [...tokenizer.encode(record.completion), eos], loss: true },
  ];
}

/** Ids to generate a completion from, tokenized as `encodeSftRecord` tokenizes prompts. */
export function encodeCompletionPrompt(tokenizer: Tokenizer, prompt: string): number[] {
  return [...bosOf(tokenizer), ...tokenizer.encode(prompt)];
}

/** Ids of a conversation followed by the assistant's header: the model's reply comes next. */
export function encodeChatPrompt(tokenizer: Tokenizer, messages: ChatMessage[]): number[] {
  return chatSegments(tokenizer, messages, true).flatMap((s) => s.ids);
}

export interface SftSequenceOptions {
  /** Longest example in tokens (bos and eos included); longer ones lose their end. */
  maxSeqLen: number;
  /** Input id at padded positions. */
  pad: number;
  /** Target id at positions that do not count. Default -100. */
  ignoreIndex?: number;
}

/**
 * Supervised fine-tuning examples as masked training sequences: one example per row, padded
 * to the longest (at most `maxSeqLen` tokens), with the loss only on trained segments
 * (completions, assistant replies). An example of L tokens gives L - 1 predictions, so rows
 * are min(maxSeqLen, longest) - 1 positions wide.
 */
export class SftSequences implements SequenceSource {
  readonly count: number;
  readonly seqLen: number;
  /** Token count of every example before truncation. */
  readonly lengths: number[];
  /** Examples longer than maxSeqLen, cut at the end. */
  readonly truncated: number[] = [];
  /** Examples left with no trained token after truncation: they add nothing to the loss. */
  readonly untrained: number[] = [];
  private readonly ids: Int32Array;
  private readonly trained: Uint8Array;
  private readonly offsets: Int32Array;
  private readonly ignore: number;

  constructor(
    examples: SftSegment[][],
    readonly options: SftSequenceOptions,
  ) {
    if (!Number.isInteger(options.maxSeqLen) || options.maxSeqLen < 2) throw new Error(`maxSeqLen must be an integer of at least 2, got ${options.maxSeqLen}`);
    this.ignore = options.ignoreIndex ?? -100;
    this.count = examples.length;
    this.lengths = examples.map((segments) => segments.reduce((n, s) => n + s.ids.length, 0));
    this.offsets = new Int32Array(examples.length + 1);
    this.lengths.forEach((length, i) => (this.offsets[i + 1] = (this.offsets[i] as number) + Math.min(length, options.maxSeqLen)));
    this.ids = new Int32Array(this.offsets[examples.length] as number);
    this.trained = new Uint8Array(this.ids.length);
    let longest = 0;
    examples.forEach((segments, i) => {
      const start = this.offsets[i] as number;
      const kept = (this.offsets[i + 1] as number) - start;
      longest = Math.max(longest, kept);
      if (kept < (this.lengths[i] as number)) this.truncated.push(i);
      let at = 0;
      let counted = 0;
      for (const segment of segments) {
        for (const id of segment.ids) {
          if (at >= kept) break;
          this.ids[start + at] = id;
          this.trained[start + at] = segment.loss ? 1 : 0;
          // The first token is never a target: nothing precedes it.
          if (segment.loss && at > 0) counted++;
          at++;
        }
      }
      if (counted === 0) this.untrained.push(i);
    });
    this.seqLen = Math.max(1, longest - 1);
  }

  /** Targets that count in one pass over the examples. */
  get tokensPerEpoch(): number {
    let total = 0;
    for (let i = 0; i < this.count; i++) {
      for (let p = (this.offsets[i] as number) + 1; p < (this.offsets[i + 1] as number); p++) total += this.trained[p] as number;
    }
    return total;
  }

  fill(index: number, row: number, inputs: Int32Array, targets: Int32Array, mask: Float32Array): void {
    const T = this.seqLen;
    const base = row * T;
    const start = this.offsets[index] as number;
    const length = (this.offsets[index + 1] as number) - start;
    for (let t = 0; t < T; t++) {
      const counts = t + 1 < length && this.trained[start + t + 1] === 1;
      inputs[base + t] = t < length ? (this.ids[start + t] as number) : this.options.pad;
      targets[base + t] = counts ? (this.ids[start + t + 1] as number) : this.ignore;
      mask[base + t] = counts ? 1 : 0;
    }
  }
}
