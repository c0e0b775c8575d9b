import { byteLevelBpeModel, type Tokenizer } from '@deepen/data';
import { arr, bool, GgufError, metaValue, str, u32, type GgufFile, type GgufValue } from './format.js';

/**
 * Tokenizers in GGUF metadata (the `tokenizer.ggml.*` keys llama.cpp reads). deepen writes and
 * reads byte-level BPE (llama.cpp's `gpt2` model), which is what deepen trains and what
 * Llama 3, Qwen2/3 and DeepSeek ship. llama.cpp does not run the tokenizer.json pre-tokenizer:
 * it picks one of its own by name (`tokenizer.ggml.pre`), so deepen names the one whose
 * splitting equals the tokenizer's and refuses a tokenizer none of them matches.
 */

/** llama.cpp's token types (llama_token_type). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

type Json = Record<string, unknown>;

const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const DEEPSEEK_V3_SPLITS = [
  '\\p{N}{1,3}',
  '[一-龥぀-ゟ゠-ヿ]+',
  "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];

const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
const byteLevel = (useRegex: boolean, trimOffsets = true) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: trimOffsets, use_regex: useRegex });

/** The pre-tokenizers llama.cpp implements that deepen maps, as tokenizer.json writes them. */
const PRE_TOKENIZERS: Record<string, { preTokenizer: Json; ignoreMerges: boolean }> = {
  'gpt-2': { preTokenizer: byteLevel(true), ignoreMerges: false },
  'llama-bpe': { preTokenizer: { type: 'Sequence', pretokenizers: [split(LLAMA3_SPLIT), byteLevel(false)] }, ignoreMerges: true },
  qwen2: { preTokenizer: { type: 'Sequence', pretokenizers: [split(QWEN2_SPLIT), byteLevel(false, false)] }, ignoreMerges: false },
  'deepseek-v3': { preTokenizer: { type: 'Sequence', pretokenizers: [...DEEPSEEK_V3_SPLITS.map(split), byteLevel(false)] }, ignoreMerges: false },
};

/** Which llama.cpp pre-tokenizer splits text as this tokenizer.json does, or why none does. */
function preTokenizerName(json: Json): string {
  const pre = json.pre_tokenizer as Json | null | undefined;
  const model = json.model as Json;
  if (!pre) throw new GgufError('the tokenizer has no pre_tokenizer: llama.cpp has no byte-level BPE without one');
  if (pre.type === 'ByteLevel') {
    if (pre.use_regex === false) throw new GgufError('the tokenizer\'s ByteLevel pre-tokenizer has use_regex false: no llama.cpp pre-tokenizer splits that way');
    if (pre.add_prefix_space === true) throw new GgufError('the tokenizer adds a prefix space: llama.cpp\'s gpt-2 pre-tokenizer does not');
    return 'gpt-2';
  }
  const splits = pre.type === 'Sequence' ? (pre.pretokenizers as Json[]) : [];
  const regexes = splits.filter((p) => p.type === 'Split').map((p) => (p.pattern as Json | undefined)?.Regex);
  const last = splits.at(-1);
  if (last?.type === 'ByteLevel' && last.use_regex === false && splits.slice(0, -1).every((p) => p.type === 'Split' && p.behavior === 'Isolated' && !p.invert)) {
    const key = JSON.stringify(regexes);
    if (key === JSON.stringify([LLAMA3_SPLIT])) {
      if (model.ignore_merges !== true) throw new GgufError('the tokenizer uses Llama 3\'s split but not its ignore_merges: llama.cpp\'s llama-bpe would tokenize differently');
      return 'llama-bpe';
    }
    if (key === JSON.stringify([QWEN2_SPLIT])) return 'qwen2';
    if (key === JSON.stringify(DEEPSEEK_V3_SPLITS)) return 'deepseek-v3';
  }
  throw new GgufError(`the tokenizer's pre-tokenizer (${JSON.stringify(pre).slice(0, 160)}) matches none of llama.cpp's that deepen maps (${Object.keys(PRE_TOKENIZERS).join(', ')})`);
}

/**
 * The tokenizer as GGUF metadata for a model with `vocabSize` embedding rows. Ids the
 * tokenizer does not use (embedding rows kept for padding) become `[PAD<id>]` tokens of type
 * UNUSED, as llama.cpp's own converter writes them.
 */
export function tokenizerMetadata(tokenizer: Tokenizer, vocabSize: number): Array<[string, GgufValue]> {
  const json = tokenizer.toJSON() as Json;
  const model = json.model as Json;
  if (model.type !== 'BPE' || model.byte_fallback === true) {
    throw new GgufError(`only byte-level BPE tokenizers export to GGUF (llama.cpp's gpt2 model); this one is ${String(model.type)}${model.byte_fallback ? ' with byte_fallback (SentencePiece style)' : ''}`);
  }
  const normalizer = json.normalizer as Json | null | undefined;
  const nfc = normalizer?.type === 'NFC';
  if (normalizer && !nfc && !(normalizer.type === 'Sequence' && (normalizer.normalizers as unknown[]).length === 0)) {
    throw new GgufError(`the tokenizer's normalizer ${JSON.stringify(normalizer).slice(0, 120)} has no llama.cpp equivalent`);
  }
  const pre = preTokenizerName(json);
  const tokens: string[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TOKEN_TYPE.NORMAL);
  for (const [token, id] of Object.entries(model.vocab as Record<string, number>)) {
    if (id >= vocabSize) throw new GgufError(`token ${JSON.stringify(token)} has id ${id}, outside the model's ${vocabSize} embedding rows`);
    tokens[id] = token;
  }
  for (const t of (json.added_tokens as Array<{ id: number; content: string; special: boolean }>) ?? []) {
    if (t.id >= vocabSize) throw new GgufError(`added token ${JSON.stringify(t.content)} has id ${t.id}, outside the model's ${vocabSize} embedding rows`);
    tokens[t.id] = t.content;
    types[t.id] = t.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
  }
  for (let id = 0; id < vocabSize; id++) {
    if (tokens[id] === undefined) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.UNUSED;
    }
  }
  const merges = (model.merges as Array<string | [string, string]>).map((m) => (Array.isArray(m) ? `${m[0]} ${m[1]}` : m));
  const out: Array<[string, GgufValue]> = [
    ['tokenizer.ggml.model', str('gpt2')],
    ['tokenizer.ggml.pre', str(pre)],
    ['tokenizer.ggml.tokens', arr('string', tokens)],
    ['tokenizer.ggml.token_type', arr('i32', types)],
    ['tokenizer.ggml.merges', arr('string', merges)],
  ];
  const { bos, eos, pad, unk } = tokenizer.special;
  if (bos !== null) out.push(['tokenizer.ggml.bos_token_id', u32(bos)]);
  if (eos !== null) out.push(['tokenizer.ggml.eos_token_id', u32(eos)]);
  if (pad !== null) out.push(['tokenizer.ggml.padding_token_id', u32(pad)]);
  if (unk !== null) out.push(['tokenizer.ggml.unknown_token_id', u32(unk)]);
  // deepen frames a prompt as [bos] text (and trains on [bos] doc [eos]) whenever the
  // tokenizer has a BOS token: llama.cpp must add it too.
  out.push(['tokenizer.ggml.add_bos_token', bool(bos !== null)]);
  out.push(['tokenizer.ggml.add_eos_token', bool(false)]);
  if (tokenizer.chatTemplate !== null) out.push(['tokenizer.chat_template', str(tokenizer.chatTemplate)]);
  return out;
}

/** What the tokenizer files of an imported GGUF are: tokenizer.json, tokenizer_config.json. */
export interface ImportedTokenizer {
  files: Record<string, string>;
  bos: number | null;
  eos: number | null;
  pad: number | null;
}

/** Rebuilds tokenizer.json (and tokenizer_config.json) from a GGUF file's tokenizer metadata. */
export function tokenizerFromGguf(file: GgufFile): ImportedTokenizer {
  const where = (key: string) => `${file.path}: ${key}`;
  const kind = metaValue(file, 'tokenizer.ggml.model', 'string');
  if (kind === undefined) throw new GgufError(`${file.path}: has no tokenizer (no tokenizer.ggml.model)`);
  if (kind !== 'gpt2') {
    throw new GgufError(`${where('tokenizer.ggml.model')} is '${kind}'; deepen rebuilds only byte-level BPE tokenizers ('gpt2', as Llama 3, Qwen and deepen's own models use)${kind === 'llama' ? ", not SentencePiece ('llama', Llama 2 / Mistral)" : ''}`);
  }
  const preName = metaValue(file, 'tokenizer.ggml.pre', 'string') ?? 'default';
  const pre = PRE_TOKENIZERS[preName];
  if (!pre) throw new GgufError(`${where('tokenizer.ggml.pre')} is '${preName}', a llama.cpp pre-tokenizer deepen does not map (it maps ${Object.keys(PRE_TOKENIZERS).join(', ')})`);
  const tokens = metaValue(file, 'tokenizer.ggml.tokens', 'array');
  const merges = metaValue(file, 'tokenizer.ggml.merges', 'array');
  if (!tokens) throw new GgufError(`${file.path}: has no tokenizer.ggml.tokens`);
  if (!merges) throw new GgufError(`${file.path}: has no tokenizer.ggml.merges (a gpt2 tokenizer needs them)`);
  const types = metaValue(file, 'tokenizer.ggml.token_type', 'array') ?? [];
  const idOf = (key: string) => {
    const v = metaValue(file, key, 'number');
    if (v === undefined) return null;
    if (!Number.isInteger(v) || v < 0 || v >= tokens.length) throw new GgufError(`${where(key)} is ${v}, not a token id (the vocabulary has ${tokens.length})`);
    return v;
  };
  const bos = idOf('tokenizer.ggml.bos_token_id');
  const eos = idOf('tokenizer.ggml.eos_token_id');
  const pad = idOf('tokenizer.ggml.padding_token_id');
  const unk = idOf('tokenizer.ggml.unknown_token_id');
  const addBos = metaValue(file, 'tokenizer.ggml.add_bos_token', 'boolean') ?? false;
  const addEos = metaValue(file, 'tokenizer.ggml.add_eos_token', 'boolean') ?? false;

  const vocab: Record<string, number> = {};
  const added: Json[] = [];
  tokens.forEach((token, id) => {
    if (typeof token !== 'string') throw new GgufError(`${where('tokenizer.ggml.tokens')}[${id}] is not a string`);
    const type = Number(types[id] ?? TOKEN_TYPE.NORMAL);
    if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.USER_DEFINED) {
      added.push({ id, content: token, single_word: false, lstrip: false, rstrip: false, normalized: type === TOKEN_TYPE.USER_DEFINED, special: type === TOKEN_TYPE.CONTROL });
    } else if (type !== TOKEN_TYPE.UNUSED) {
      vocab[token] = id;
    }
  });
  const bosToken = bos === null ? null : (tokens[bos] as string);
  const eosToken = eos === null ? null : (tokens[eos] as string);
  const framed = (ids: Array<number | null>) => ids.filter((id): id is number => id !== null);
  const prefix = framed([addBos ? bos : null]);
  const suffix = framed([addEos ? eos : null]);
  const specialTokens: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
  for (const id of [...prefix, ...suffix]) specialTokens[tokens[id] as string] = { id: tokens[id] as string, ids: [id], tokens: [tokens[id] as string] };
  const piece = (id: number) => ({ SpecialToken: { id: tokens[id] as string, type_id: 0 } });
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: pre.preTokenizer,
    post_processor:
      prefix.length + suffix.length > 0
        ? {
            type: 'TemplateProcessing',
            single: [...prefix.map(piece), { Sequence: { id: 'A', type_id: 0 } }, ...suffix.map(piece)],
            pair: [...prefix.map(piece), { Sequence: { id: 'A', type_id: 0 } }, ...suffix.map(piece), ...prefix.map(piece), { Sequence: { id: 'B', type_id: 1 } }, ...suffix.map(piece)],
            special_tokens: specialTokens,
          }
        : null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: byteLevelBpeModel(vocab, merges.map(String), { ignoreMerges: pre.ignoreMerges }),
  };
  // bos_token is named only when prompts start with it: deepen (like llama.cpp with
  // add_bos_token false) then frames prompts without it.
  const config: Json = {
    add_bos_token: addBos,
    add_eos_token: addEos,
    bos_token: addBos ? bosToken : null,
    eos_token: eosToken,
    pad_token: pad === null ? null : tokens[pad],
    unk_token: unk === null ? null : tokens[unk],
    model_max_length: 1e30,
    tokenizer_class: 'PreTrainedTokenizerFast',
    clean_up_tokenization_spaces: false,
  };
  const template = metaValue(file, 'tokenizer.chat_template', 'string');
  if (template !== undefined) config.chat_template = template;
  const files = {
    'tokenizer.json': `${JSON.stringify(tokenizerJson, null, 2)}\n`,
    'tokenizer_config.json': `${JSON.stringify(config, null, 2)}\n`,
  };
  return { files, bos: addBos ? bos : null, eos, pad };
}
