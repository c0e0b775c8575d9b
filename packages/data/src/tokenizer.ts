import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileDurable } from '@deepen/core';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { BYTE_TO_CHAR, byteLevelPreTokens } from './byte-level.js';

const CHAR_TO_BYTE = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** Ids of the special tokens deepen cares about (null where the tokenizer has none). */
export interface SpecialIds {
  bos: number | null;
  eos: number | null;
  pad: number | null;
  unk: number | null;
}

interface Encoder {
  encode(text: string): number[];
  decode(ids: number[], skipSpecial: boolean): string;
}

type Json = Record<string, unknown>;

/**
 * GPT-2 style byte-level BPE with a per-word cache: the same ids as the Hugging Face
 * libraries (checked in the tests) at several times their speed on long corpora.
 */
class ByteLevelBpeEncoder implements Encoder {
  private readonly ranks = new Map<string, number>();
  private readonly vocab: Map<string, number>;
  private readonly idToToken: string[] = [];
  private readonly cache = new Map<string, number[]>();
  private readonly added: Array<{ content: string; id: number; special: boolean }>;
  private readonly addedPattern: RegExp | null;
  private readonly prefixSpace: boolean;

  constructor(json: Json) {
    const model = json.model as { vocab: Record<string, number>; merges: Array<string | [string, string]> };
    this.vocab = new Map(Object.entries(model.vocab));
    for (const [token, id] of this.vocab) this.idToToken[id] = token;
    model.merges.forEach((m, rank) => this.ranks.set(Array.isArray(m) ? `${m[0]} ${m[1]}` : m, rank));
    this.added = ((json.added_tokens as Array<{ id: number; content: string; special: boolean }>) ?? []).map((t) => ({ content: t.content, id: t.id, special: t.special }));
    for (const t of this.added) this.idToToken[t.id] = t.content;
    const escaped = [...this.added].sort((a, b) => b.content.length - a.content.length).map((t) => t.content.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.addedPattern = escaped.length > 0 ? new RegExp(`(${escaped.join('|')})`, 'g') : null;
    this.prefixSpace = (json.pre_tokenizer as { add_prefix_space?: boolean }).add_prefix_space === true;
  }

  private bpe(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    let parts = Array.from(word);
    while (parts.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const rank = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const a = parts[best] as string;
      const b = parts[best + 1] as string;
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(parts[i] as string);
      }
      parts = next;
    }
    const ids = parts.map((p) => {
      const id = this.vocab.get(p);
      if (id === undefined) throw new Error(`byte-level BPE: symbol '${p}' is not in the vocabulary`);
      return id;
    });
    if (this.cache.size < 1_000_000) this.cache.set(word, ids);
    return ids;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    const segments = this.addedPattern ? text.split(this.addedPattern) : [text];
    segments.forEach((segment, i) => {
      if (segment === '') return;
      if (this.addedPattern && i % 2 === 1) {
        ids.push((this.added.find((t) => t.content === segment) as { id: number }).id);
        return;
      }
      const input = this.prefixSpace && !segment.startsWith(' ') ? ` ${segment}` : segment;
      for (const word of byteLevelPreTokens(input)) for (const id of this.bpe(word)) ids.push(id);
    });
    return ids;
  }

  decode(ids: number[], skipSpecial: boolean): string {
    const out: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      // ignoreBOM: a U+FEFF at the start of a run (of the text, or after a special token) is
      // text the ids encode, not a byte-order mark to drop.
      if (bytes.length > 0) out.push(new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes)));
      bytes = [];
    };
    const special = new Map(this.added.map((t) => [t.id, t]));
    for (const id of ids) {
      const added = special.get(id);
      if (added) {
        if (skipSpecial && added.special) continue;
        flush();
        out.push(added.content);
        continue;
      }
      const token = this.idToToken[id];
      if (token === undefined) throw new Error(`decode: id ${id} is outside the vocabulary`);
      for (const ch of token) bytes.push(CHAR_TO_BYTE.get(ch) ?? 0x3f);
    }
    flush();
    const text = out.join('');
    return this.prefixSpace && text.startsWith(' ') ? text.slice(1) : text;
  }
}

/** Everything else tokenizer.json can describe (LLaMA/Mistral byte-fallback BPE, ...), via Hugging Face's tokenizers.js. */
class HfEncoder implements Encoder {
  private readonly tokenizer: HfTokenizer;
  constructor(json: Json) {
    this.tokenizer = new HfTokenizer(json, {});
  }
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }
  decode(ids: number[], skipSpecial: boolean): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: skipSpecial, clean_up_tokenization_spaces: false });
  }
}

function isPlainByteLevelBpe(json: Json): boolean {
  const model = json.model as Json | undefined;
  const pre = json.pre_tokenizer as Json | null | undefined;
  return (
    model?.type === 'BPE' &&
    !model.byte_fallback &&
    !model.continuing_subword_prefix &&
    !model.end_of_word_suffix &&
    !model.dropout &&
    !model.ignore_merges &&
    json.normalizer === null &&
    pre?.type === 'ByteLevel' &&
    pre.use_regex !== false &&
    (json.decoder as Json | null)?.type === 'ByteLevel' &&
    ((json.added_tokens as Array<{ normalized?: boolean; lstrip?: boolean; rstrip?: boolean; single_word?: boolean }>) ?? []).every(
      (t) => !t.lstrip && !t.rstrip && !t.single_word,
    )
  );
}

const SPECIAL_NAMES: Record<keyof SpecialIds, string[]> = {
  bos: ['<s>', '<|begin_of_text|>', '<bos>', '[CLS]'],
  eos: ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>', '[SEP]'],
  pad: ['<pad>', '<|pad|>', '[PAD]'],
  unk: ['<unk>', '[UNK]'],
};

/**
 * A tokenizer loaded from a Hugging Face tokenizer.json. Byte-level BPE (GPT-2 style, and
 * what deepen trains) runs on deepen's cached encoder; every other model on tokenizers.js.
 */
export class Tokenizer {
  readonly special: SpecialIds;
  readonly vocabSize: number;
  /** Identifies the exact tokenizer (hash of its JSON): part of every token cache key. */
  readonly fingerprint: string;
  /** Which encoder runs: deepen's byte-level BPE or Hugging Face's tokenizers.js. */
  readonly engine: 'byte-level-bpe' | 'tokenizers.js';
  private readonly encoder: Encoder;
  private readonly tokenToIdMap: Map<string, number>;

  private constructor(
    private readonly json: Json,
    engine: 'auto' | 'tokenizers.js',
  ) {
    const model = json.model as { vocab?: Record<string, number> | Array<[string, number]> } | undefined;
    if (!model || typeof model !== 'object') throw new Error('tokenizer.json has no "model"');
    const entries: Array<[string, number]> = Array.isArray(model.vocab)
      ? model.vocab.map(([token], id) => [token, id]) // Unigram: [piece, score] pairs
      : Object.entries(model.vocab ?? {});
    for (const t of (json.added_tokens as Array<{ id: number; content: string }>) ?? []) entries.push([t.content, t.id]);
    this.tokenToIdMap = new Map(entries);
    this.vocabSize = entries.reduce((m, [, id]) => Math.max(m, id + 1), 0);
    const find = (names: string[]) => names.map((n) => this.tokenToIdMap.get(n)).find((id) => id !== undefined) ?? null;
    this.special = { bos: find(SPECIAL_NAMES.bos), eos: find(SPECIAL_NAMES.eos), pad: find(SPECIAL_NAMES.pad), unk: find(SPECIAL_NAMES.unk) };
    this.fingerprint = createHash('sha256').update(JSON.stringify(json)).digest('hex').slice(0, 32);
    this.engine = engine === 'auto' && isPlainByteLevelBpe(json) ? 'byte-level-bpe' : 'tokenizers.js';
    this.encoder = this.engine === 'byte-level-bpe' ? new ByteLevelBpeEncoder(json) : new HfEncoder(json);
  }

  /**
   * From a parsed tokenizer.json. `engine: 'tokenizers.js'` skips deepen's byte-level fast
   * path and always uses Hugging Face's implementation (the fast path gives the same ids).
   */
  static fromJSON(json: unknown, source = 'tokenizer.json', options: { engine?: 'auto' | 'tokenizers.js' } = {}): Tokenizer {
    if (typeof json !== 'object' || json === null) throw new Error(`${source}: expected a JSON object`);
    try {
      return new Tokenizer(json as Json, options.engine ?? 'auto');
    } catch (error) {
      throw new Error(`${source}: ${(error as Error).message}`);
    }
  }

  static fromFile(path: string): Tokenizer {
    if (!existsSync(path)) throw new Error(`${path}: tokenizer file not found`);
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new Error(`${path}: not valid JSON (${(error as Error).message})`);
    }
    return Tokenizer.fromJSON(json, path);
  }

  /** Token ids of `text`; no BOS/EOS are added (packing adds them where wanted). */
  encode(text: string): number[] {
    return this.encoder.encode(text);
  }

  decode(ids: number[], options: { skipSpecialTokens?: boolean } = {}): string {
    return this.encoder.decode(ids, options.skipSpecialTokens ?? false);
  }

  tokenToId(token: string): number | null {
    return this.tokenToIdMap.get(token) ?? null;
  }

  toJSON(): unknown {
    return this.json;
  }

  /** The tokenizer.json text (pretty-printed, as Hugging Face writes it). */
  serialize(): string {
    return `${JSON.stringify(this.json, null, 2)}\n`;
  }

  save(path: string): void {
    writeFileDurable(path, this.serialize());
  }
}
