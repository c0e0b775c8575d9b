import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurable } from '@deepen/core';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { BYTE_TO_CHAR, byteLevelPreTokens } from './byte-level.js';
import { ChatTemplate, type ChatTemplateMessage, type ChatTemplateOptions } from './chat-template.js';
import {
  chatTemplateOf,
  configToken,
  framingOf,
  readTokenizerFolder,
  templateTokenVariables,
  TOKENIZER_CONFIG_JSON,
  TOKENIZER_JSON,
  TokenizerError,
  type Framing,
  type Json,
  type SpecialTokens,
} from './tokenizer-config.js';

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

/** The model types tokenizers.js implements; for any other it silently falls back to a lookup that returns wrong ids. */
const TOKENIZERS_JS_MODELS = ['BPE', 'Unigram', 'WordPiece'];

/** Everything else tokenizer.json can describe (LLaMA/Mistral byte-fallback BPE, ...), via Hugging Face's tokenizers.js. */
class HfEncoder implements Encoder {
  private readonly tokenizer: HfTokenizer;
  constructor(json: Json) {
    const type = (json.model as Json).type;
    if (typeof type !== 'string' || !TOKENIZERS_JS_MODELS.includes(type)) {
      throw new Error(`tokenizer model type ${JSON.stringify(type ?? null)} is not implemented by tokenizers.js (it implements ${TOKENIZERS_JS_MODELS.join(', ')})`);
    }
    this.tokenizer = new HfTokenizer(json, {});
  }
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }
  decode(ids: number[], skipSpecial: boolean): string {
    // tokenizers.js rejects an empty list ("token_ids must be a non-empty array"); it is the empty text.
    if (ids.length === 0) return '';
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


/** Names deepen guesses special tokens by when no tokenizer_config.json names them (deepen's own tokenizers have none). */
const SPECIAL_NAMES: Record<keyof SpecialIds, string[]> = {
  bos: ['<s>', '<|begin_of_text|>', '<bos>', '[CLS]'],
  eos: ['</s>', '<|end_of_text|>', '<|endoftext|>', '<eos>', '[SEP]'],
  pad: ['<pad>', '<|pad|>', '[PAD]'],
  unk: ['<unk>', '[UNK]'],
};

const CONFIG_KEYS: Record<keyof SpecialIds, string> = { bos: 'bos_token', eos: 'eos_token', pad: 'pad_token', unk: 'unk_token' };

export interface TokenizerOptions {
  /** 'tokenizers.js' skips deepen's byte-level fast path and always uses Hugging Face's implementation (the fast path gives the same ids). */
  engine?: 'auto' | 'tokenizers.js';
  /** A parsed tokenizer_config.json (special_tokens_map.json merged in), read as transformers reads it. */
  config?: Json | null;
  /** A chat template that takes priority over the config's (a folder's chat_template.jinja). */
  chatTemplate?: string | null;
  /** config.json's model_type: decides the tokenizer class (and so the framing) when the config names none. */
  modelType?: string | null;
}

export interface EncodeOptions {
  /**
   * Frame the text with the special tokens transformers adds with add_special_tokens=True
   * (`[bos] text` for LLaMA, nothing for Qwen). Default false: the bare text's ids.
   */
  addSpecialTokens?: boolean;
}

/**
 * A tokenizer loaded from a Hugging Face tokenizer.json, or from a tokenizer folder as
 * transformers loads it (tokenizer.json plus tokenizer_config.json: special tokens, framing,
 * chat template). Byte-level BPE (GPT-2 style, and what deepen trains) runs on deepen's cached
 * encoder; every other model on tokenizers.js.
 */
export class Tokenizer {
  /** Ids of the special tokens: the ones tokenizer_config.json names, else guessed by name. */
  readonly special: SpecialIds;
  /** The special tokens' strings (what chat templates get as bos_token, eos_token, ...). */
  readonly specialTokens: SpecialTokens;
  readonly vocabSize: number;
  /**
   * Identifies the exact tokenizer (hash of its tokenizer.json): part of every token cache key.
   * tokenizer_config.json is not part of it, since `encode` without special tokens does not depend on it.
   */
  readonly fingerprint: string;
  /** Which encoder runs: deepen's byte-level BPE or Hugging Face's tokenizers.js. */
  readonly engine: 'byte-level-bpe' | 'tokenizers.js';
  /** The chat template transformers' apply_chat_template would use, or null (deepen's own tokenizers have none). */
  readonly chatTemplate: string | null;
  /** The special tokens as a chat template gets them (bos_token, eos_token, ..., additional_special_tokens), as in transformers' special_tokens_map. */
  readonly chatTemplateTokens: Readonly<Record<string, unknown>>;
  /** The tokenizer_config.json it was loaded with (special_tokens_map.json merged in), or null. */
  readonly config: Json | null;
  /** The contents of tokenizer.json's added tokens marked special (what skipSpecialTokens drops). */
  readonly specialTokenStrings: readonly string[];
  private readonly encoder: Encoder;
  private readonly tokenToIdMap: Map<string, number>;
  private readonly knownIds: Uint8Array;
  private readonly framingOrError: Framing | TokenizerError;
  private compiledTemplate: ChatTemplate | null = null;
  private folderFiles: Record<string, string> = {};

  private constructor(
    private readonly json: Json,
    engine: 'auto' | 'tokenizers.js',
    options: TokenizerOptions,
    source: string,
  ) {
    const model = json.model as { vocab?: Record<string, number> | Array<[string, number]> } | undefined;
    // Errors without a location are plain Errors here; fromJSON prefixes the source.
    if (!model || typeof model !== 'object') throw new Error('tokenizer.json has no "model"');
    const entries: Array<[string, number]> = Array.isArray(model.vocab)
      ? model.vocab.map(([token], id) => [token, id]) // Unigram: [piece, score] pairs
      : Object.entries(model.vocab ?? {});
    for (const t of (json.added_tokens as Array<{ id: number; content: string }>) ?? []) entries.push([t.content, t.id]);
    this.tokenToIdMap = new Map(entries);
    this.specialTokenStrings = ((json.added_tokens as Array<{ content: string; special?: boolean }>) ?? []).filter((t) => t.special).map((t) => t.content);
    this.vocabSize = entries.reduce((m, [, id]) => Math.max(m, id + 1), 0);
    this.knownIds = new Uint8Array(this.vocabSize);
    for (const [, id] of entries) this.knownIds[id] = 1;
    this.config = options.config ?? null;
    const configSource = `${source.endsWith(TOKENIZER_JSON) ? source.slice(0, -TOKENIZER_JSON.length) : `${source} `}${TOKENIZER_CONFIG_JSON}`;
    const strings = {} as SpecialTokens;
    for (const key of Object.keys(CONFIG_KEYS) as Array<keyof SpecialIds>) {
      const named = this.config ? configToken(this.config, CONFIG_KEYS[key], configSource) : undefined;
      if (named === undefined) {
        // Not named by a config: deepen's guess (transformers would use the tokenizer class's default).
        strings[key] = SPECIAL_NAMES[key].find((n) => this.tokenToIdMap.has(n)) ?? null;
      } else {
        if (named !== null && !this.tokenToIdMap.has(named)) throw new TokenizerError(`${configSource}: ${CONFIG_KEYS[key]} "${named}" is not in the vocabulary`);
        strings[key] = named;
      }
    }
    this.specialTokens = strings;
    const idOf = (token: string | null) => (token === null ? null : (this.tokenToIdMap.get(token) ?? null));
    this.special = { bos: idOf(strings.bos), eos: idOf(strings.eos), pad: idOf(strings.pad), unk: idOf(strings.unk) };
    try {
      this.framingOrError = framingOf(json, this.config, options.modelType ?? null, this.special, configSource);
    } catch (error) {
      // A bad setting in the config fails the load; a post_processor deepen cannot read only
      // matters to encode({ addSpecialTokens: true }), which reports it.
      if (error instanceof TokenizerError) throw error;
      this.framingOrError = new TokenizerError(`${source}: ${(error as Error).message}`);
    }
    this.chatTemplate = chatTemplateOf(this.config, options.chatTemplate ?? null, configSource);
    this.chatTemplateTokens = templateTokenVariables(this.config, this.specialTokens, configSource);
    this.fingerprint = createHash('sha256').update(JSON.stringify(json)).digest('hex').slice(0, 32);
    this.engine = engine === 'auto' && isPlainByteLevelBpe(json) ? 'byte-level-bpe' : 'tokenizers.js';
    this.encoder = this.engine === 'byte-level-bpe' ? new ByteLevelBpeEncoder(json) : new HfEncoder(json);
  }

  /** From a parsed tokenizer.json, optionally with its tokenizer_config.json (see TokenizerOptions). */
  static fromJSON(json: unknown, source = 'tokenizer.json', options: TokenizerOptions = {}): Tokenizer {
    if (typeof json !== 'object' || json === null) throw new TokenizerError(`${source}: expected a JSON object`);
    try {
      return new Tokenizer(json as Json, options.engine ?? 'auto', options, source);
    } catch (error) {
      if (error instanceof TokenizerError) throw error;
      throw new TokenizerError(`${source}: ${(error as Error).message}`);
    }
  }

  /** From a tokenizer.json file alone (no tokenizer_config.json: special tokens guessed by name, no chat template). */
  static fromFile(path: string): Tokenizer {
    if (!existsSync(path)) throw new TokenizerError(`${path}: tokenizer file not found`);
    return Tokenizer.fromJSON(readTokenizerJson(path), path);
  }

  /**
   * From a tokenizer (or checkpoint) folder, as transformers' AutoTokenizer.from_pretrained
   * reads one: tokenizer.json, plus tokenizer_config.json, special_tokens_map.json and
   * chat_template.jinja where present (config.json's model_type when the config names no class).
   */
  static fromDir(dir: string, options: Pick<TokenizerOptions, 'engine'> = {}): Tokenizer {
    if (!existsSync(dir)) throw new TokenizerError(`${dir}: tokenizer folder not found`);
    if (!statSync(dir).isDirectory()) throw new TokenizerError(`${dir}: not a folder`);
    const path = join(dir, TOKENIZER_JSON);
    if (!existsSync(path)) throw new TokenizerError(`${dir}: no ${TOKENIZER_JSON}`);
    const folder = readTokenizerFolder(dir);
    const tokenizer = Tokenizer.fromJSON(readTokenizerJson(path), path, { ...options, config: folder.config, chatTemplate: folder.chatTemplate, modelType: folder.modelType });
    tokenizer.folderFiles = folder.files;
    return tokenizer;
  }

  /** The ids transformers adds around a text encoded with add_special_tokens=True. */
  get framing(): Framing {
    if (this.framingOrError instanceof TokenizerError) throw this.framingOrError;
    return this.framingOrError;
  }

  /** Whether encoding with special tokens starts with the BOS token (so `[bos] doc [eos]` packing matches the model's framing). */
  get addsBos(): boolean {
    return this.special.bos !== null && this.framing.prefix[0] === this.special.bos;
  }

  /** Whether encoding with special tokens ends with the EOS token. */
  get addsEos(): boolean {
    return this.special.eos !== null && this.framing.suffix.at(-1) === this.special.eos;
  }

  /** Token ids of `text`; with `addSpecialTokens`, framed as transformers frames it (see EncodeOptions). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const ids = this.encoder.encode(text);
    if (!options.addSpecialTokens) return ids;
    const { prefix, suffix } = this.framing;
    return [...prefix, ...ids, ...suffix];
  }

  /**
   * The text of `ids` (empty for none). Every id must be one of the vocabulary's; the text is
   * never "cleaned up" (clean_up_tokenization_spaces), so decoding what `encode` gave returns
   * the text wherever the tokenizer itself is lossless.
   */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.knownIds[id] !== 1) throw new TokenizerError(`decode: ${id} is not a token id of this tokenizer (vocabulary of ${this.vocabSize})`);
    }
    return this.encoder.decode([...ids], options.skipSpecialTokens ?? false);
  }

  tokenToId(token: string): number | null {
    return this.tokenToIdMap.get(token) ?? null;
  }

  /**
   * The conversation rendered with the tokenizer's chat template, as transformers'
   * apply_chat_template(messages, tokenize=False) renders it: the special tokens as
   * bos_token, eos_token, ..., plus `add_generation_prompt`.
   */
  applyChatTemplate(messages: readonly ChatTemplateMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) throw new TokenizerError('this tokenizer has no chat template (tokenizer_config.json has no chat_template)');
    this.compiledTemplate ??= new ChatTemplate(this.chatTemplate, this.chatTemplateTokens);
    return this.compiledTemplate.render(messages, options);
  }

  /**
   * Ids of the rendered conversation, as apply_chat_template(tokenize=True) gives them: the
   * text encoded without special tokens, since the template writes them (the BOS) itself.
   */
  encodeChat(messages: readonly ChatTemplateMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options));
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

  /**
   * The tokenizer's files by name: tokenizer.json and, for one read by `fromDir`, the
   * tokenizer_config.json, special_tokens_map.json and chat_template.jinja it was read with,
   * so a checkpoint derived from a model keeps its chat template and special tokens.
   */
  files(): Record<string, string> {
    return { ...this.folderFiles, [TOKENIZER_JSON]: this.serialize() };
  }
}

function readTokenizerJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TokenizerError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}
