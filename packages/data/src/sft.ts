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

/**
 * The BOS token where the tokenizer has one. (For the real models this is also their
 * add_special_tokens framing; deepen's own tokenizers get a BOS that tokenizer.json's
 * post-processor would not add, as SFT examples always have.)
 */
const bosOf = (tokenizer: Tokenizer): number[] => (tokenizer.special.bos === null ? [] : [tokenizer.special.bos]);

/**
 * Deepen's chat format for tokenizers without a chat template (Zephyr's): every message is
 * `<|role|>\n{content}` followed by the end-of-sequence token, messages are joined by a
 * newline, and a reply is prompted with `\n<|assistant|>\n`. Only assistant contents and their
 * end-of-sequence token are trained. Each piece is tokenized on its own, so a prompt built
 * with `encodeChatPrompt` tokenizes exactly like the training data.
 */
function zephyrSegments(tokenizer: Tokenizer, messages: ChatMessage[], generationPrompt: boolean): SftSegment[] {
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

/** The end of the last special token (tokenizer.json's added tokens marked special) in text[from, to), or -1. */
function lastSpecialEnd(tokenizer: Tokenizer, text: string, from: number, to: number): number {
  let end = -1;
  const span = text.slice(from, to);
  for (const token of tokenizer.specialTokenStrings) {
    const at = span.lastIndexOf(token);
    if (at >= 0) end = Math.max(end, from + at + token.length);
  }
  return end;
}

/**
 * Where each assistant reply lies in the rendered conversation, as character spans [start, end):
 * a reply starts where the rendering of the messages before it with the generation prompt
 * ends, and ends with its end-of-turn token (the last special token of the reply's rendering;
 * the newline some templates write after it is not trained). This is the approximation TRL
 * and transformers' assistant-token masks make for templates without {% generation %} tags;
 * it needs only that the prompt before a reply is a prefix of the whole rendering. Where
 * the rendering with a reply last differs from the whole (Qwen3 writes an empty <think>
 * block only for the final reply), the reply ends at the first end-of-turn token in the whole.
 */
function assistantSpans(tokenizer: Tokenizer, messages: ChatMessage[], full: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  messages.forEach((m, k) => {
    if (m.role !== 'assistant') return;
    const prompt = tokenizer.applyChatTemplate(messages.slice(0, k), { addGenerationPrompt: true });
    const start = prompt.length;
    if (!full.startsWith(prompt) || start < (spans.at(-1)?.[1] ?? 0)) {
      throw new Error(`chat template: the conversation before message ${k} with the generation prompt is not the start of the whole conversation, so the assistant reply cannot be located`);
    }
    const withReply = tokenizer.applyChatTemplate(messages.slice(0, k + 1));
    let end: number;
    if (full.startsWith(withReply)) {
      end = withReply.length;
      const special = lastSpecialEnd(tokenizer, full, start, end);
      if (special > start) end = special;
    } else {
      const ending = withReply.startsWith(prompt) ? lastSpecialEnd(tokenizer, withReply, start, withReply.length) : -1;
      const terminator = ending < 0 ? null : tokenizer.specialTokenStrings.filter((t) => withReply.slice(0, ending).endsWith(t)).sort((a, b) => b.length - a.length)[0];
      const at = terminator ? full.indexOf(terminator, start) : -1;
      if (!terminator || at < 0) throw new Error(`chat template: the end of assistant message ${k} cannot be located in the rendered conversation`);
      end = at + terminator.length;
    }
    spans.push([start, end]);
  });
  return spans;
}

const sameIds = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** How many leading ids `a` and `b` share. */
function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/**
 * A conversation rendered with the tokenizer's chat template, as segments whose ids are
 * exactly those of the whole rendering encoded at once (apply_chat_template(tokenize=True)),
 * with the loss on the assistant replies and their end-of-turn tokens. The rendering is cut at
 * the reply spans and each piece tokenized on its own; where the pieces' ids do not join into
 * the whole's (a merge across a cut), the whole is tokenized and each span mapped to the
 * tokens overlapping it: tokens [0, n) belong to the text before a cut at c when they are the
 * ids the text before c encodes to (tokenizers.js gives no offsets).
 */
function templateSegments(tokenizer: Tokenizer, messages: ChatMessage[]): SftSegment[] {
  const full = tokenizer.applyChatTemplate(messages);
  const spans = assistantSpans(tokenizer, messages, full);
  const cuts = [0, ...spans.flat(), full.length];
  const pieces: SftSegment[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) pieces.push({ ids: tokenizer.encode(full.slice(cuts[i], cuts[i + 1])), loss: i % 2 === 1 });
  const whole = tokenizer.encode(full);
  if (sameIds(pieces.flatMap((p) => p.ids), whole)) return pieces.filter((p) => p.ids.length > 0);
  const tokenAt = (cut: number, side: 'start' | 'end') => {
    const before = tokenizer.encode(full.slice(0, cut));
    const shared = commonPrefix(whole, before);
    // A token of the whole that straddles the cut overlaps the span: it is trained.
    return side === 'end' && before.length > shared ? shared + 1 : shared;
  };
  const segments: SftSegment[] = [];
  let at = 0;
  for (const [start, end] of spans) {
    const from = Math.max(at, tokenAt(start, 'start'));
    const to = Math.max(from, tokenAt(end, 'end'));
    segments.push({ ids: whole.slice(at, from), loss: false }, { ids: whole.slice(from, to), loss: true });
    at = to;
  }
  segments.push({ ids: whole.slice(at), loss: false });
  return segments.filter((s) => s.ids.length > 0);
}

/**
 * Token segments of one example. Prompt → completion: `[bos] prompt` untrained, then
 * `completion eos` trained (prompt and completion are tokenized separately, so a completion
 * usually starts with a space). A conversation is rendered with the tokenizer's chat template
 * where it has one (the model's own format; see templateSegments), else with deepen's
 * Zephyr-style format; either way only the assistant replies and their end-of-turn tokens train.
 */
export function encodeSftRecord(tokenizer: Tokenizer, record: SftRecord): SftSegment[] {
  if ('messages' in record) return tokenizer.chatTemplate !== null ? templateSegments(tokenizer, record.messages) : zephyrSegments(tokenizer, record.messages, false);
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

/**
 * Ids of a conversation followed by the assistant's header: the model's reply comes next.
 * With a chat template, apply_chat_template(add_generation_prompt=True, tokenize=True)'s ids.
 */
export function encodeChatPrompt(tokenizer: Tokenizer, messages: ChatMessage[]): number[] {
  if (tokenizer.chatTemplate !== null) return tokenizer.encodeChat(messages, { addGenerationPrompt: true });
  return zephyrSegments(tokenizer, messages, true).flatMap((s) => s.ids);
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
