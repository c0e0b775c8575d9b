// How Hugging Face transformers (4.x, `AutoTokenizer.from_pretrained`) reads the files of a
// tokenizer folder besides tokenizer.json: which special tokens a model has, whether encoding
// with add_special_tokens=True frames the text with them, and which chat template it uses.
// These are facts about transformers' behaviour, written down where deepen needs them; the
// tokenization itself stays in the libraries (tokenizers.js, deepen's byte-level encoder).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type Json = Record<string, unknown>;

/** A tokenizer that cannot be loaded or used as asked; the message names the file or setting. */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

export const TOKENIZER_JSON = 'tokenizer.json';
export const TOKENIZER_CONFIG_JSON = 'tokenizer_config.json';
export const SPECIAL_TOKENS_MAP_JSON = 'special_tokens_map.json';
export const CHAT_TEMPLATE_JINJA = 'chat_template.jinja';
const MODEL_CONFIG_JSON = 'config.json';

/** The special-token strings of a tokenizer (null where it has none). */
export interface SpecialTokens {
  bos: string | null;
  eos: string | null;
  pad: string | null;
  unk: string | null;
}

/** What transformers reads from a tokenizer folder besides tokenizer.json. */
export interface TokenizerFolder {
  /** tokenizer_config.json with special_tokens_map.json merged in as transformers merges it; null when absent. */
  config: Json | null;
  /** chat_template.jinja, which transformers prefers to the config's chat_template. */
  chatTemplate: string | null;
  /** config.json's model_type: picks the tokenizer class when tokenizer_config.json names none. */
  modelType: string | null;
  /** The texts of the files read (tokenizer.json excluded), to copy next to a derived checkpoint. */
  files: Record<string, string>;
}

function readJson(path: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TokenizerError(`${path}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TokenizerError(`${path}: expected a JSON object`);
  return value as Json;
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/**
 * Reads tokenizer_config.json, special_tokens_map.json, chat_template.jinja and config.json
 * from `dir` (each optional). As in transformers' `_from_pretrained`, special_tokens_map.json
 * only counts for configs without `added_tokens_decoder` (older saves), where its entries
 * replace the config's.
 */
export function readTokenizerFolder(dir: string): TokenizerFolder {
  const files: Record<string, string> = {};
  const read = (name: string): Json | null => {
    const path = join(dir, name);
    if (!existsSync(path)) return null;
    const json = readJson(path);
    files[name] = readFileSync(path, 'utf8');
    return json;
  };
  let config = read(TOKENIZER_CONFIG_JSON);
  const map = read(SPECIAL_TOKENS_MAP_JSON);
  if (map && !(config && 'added_tokens_decoder' in config)) {
    config = { ...(config ?? {}) };
    for (const [key, value] of Object.entries(map)) {
      if (key === 'additional_special_tokens' && Array.isArray(value)) {
        const merged = Array.isArray(config[key]) ? [...(config[key] as unknown[])] : [];
        for (const token of value) if (!merged.some((t) => tokenContent(t) === tokenContent(token))) merged.push(token);
        config[key] = merged;
      } else config[key] = value;
    }
  }
  let chatTemplate: string | null = null;
  const templatePath = join(dir, CHAT_TEMPLATE_JINJA);
  if (existsSync(templatePath)) {
    chatTemplate = readFileSync(templatePath, 'utf8');
    files[CHAT_TEMPLATE_JINJA] = chatTemplate;
  }
  // config.json is the model's, not the tokenizer's: read for model_type only, never copied.
  const modelConfigPath = join(dir, MODEL_CONFIG_JSON);
  let modelType: string | null = null;
  if (existsSync(modelConfigPath) && statSync(modelConfigPath).isFile()) {
    const modelConfig = readJson(modelConfigPath);
    if (typeof modelConfig.model_type === 'string') modelType = modelConfig.model_type;
  }
  return { config, chatTemplate, modelType, files };
}

/** The text of a token as configs write it: a string, or an AddedToken object `{ content }`. */
function tokenContent(value: unknown): string | null | undefined {
  if (value === undefined) return undefined;
  if (value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') return (value as { content: string }).content;
  return undefined;
}

/** `key` of the config as a token string: undefined when the config does not set it. */
export function configToken(config: Json, key: string, source: string): string | null | undefined {
  if (!(key in config)) return undefined;
  const content = tokenContent(config[key]);
  if (content === undefined) throw new TokenizerError(`${source}: ${key} must be a string, an AddedToken object with "content", or null`);
  return content === '' ? null : content;
}

/**
 * The variables transformers gives a chat template for the tokenizer's special tokens
 * (`special_tokens_map`): every set one of bos_token ... mask_token as a string, and
 * additional_special_tokens as a list of strings.
 */
export function templateTokenVariables(config: Json | null, special: SpecialTokens, source: string): Record<string, unknown> {
  const vars: Record<string, unknown> = {};
  const resolved: Record<string, string | null> = { bos_token: special.bos, eos_token: special.eos, pad_token: special.pad, unk_token: special.unk };
  for (const key of SPECIAL_KEYS) {
    const value = key in resolved ? resolved[key] : config ? configToken(config, key, source) : undefined;
    if (value) vars[key] = value;
  }
  const additional = config?.additional_special_tokens;
  if (Array.isArray(additional) && additional.length > 0) {
    vars.additional_special_tokens = additional.map((t) => {
      const content = tokenContent(t);
      if (typeof content !== 'string') throw new TokenizerError(`${source}: additional_special_tokens must hold strings or AddedToken objects`);
      return content;
    });
  }
  return vars;
}

/**
 * The chat template transformers uses without tools: the config's `chat_template` string, or
 * the one named "default" when it is a list of `{ name, template }`. chat_template.jinja wins.
 */
export function chatTemplateOf(config: Json | null, file: string | null, source: string): string | null {
  if (file !== null) return file;
  const value = config?.chat_template;
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.filter((t): t is { name: string; template: string } => typeof t?.name === 'string' && typeof t?.template === 'string');
    if (named.length !== value.length) throw new TokenizerError(`${source}: chat_template must be a string or a list of { name, template }`);
    const found = named.find((t) => t.name === 'default');
    if (!found) throw new TokenizerError(`${source}: chat_template lists ${named.map((t) => `"${t.name}"`).join(', ')} but no "default" template`);
    return found.template;
  }
  throw new TokenizerError(`${source}: chat_template must be a string or a list of { name, template }`);
}

/**
 * The fast tokenizer classes of transformers 4.x that replace tokenizer.json's post_processor
 * in their constructor (`update_post_processor`) with `[bos] $A [eos]` from add_bos_token /
 * add_eos_token, and those flags' defaults. Every other class (PreTrainedTokenizerFast,
 * Qwen2TokenizerFast, ...) frames text with tokenizer.json's post_processor and ignores the flags.
 */
const REBUILDS_POST_PROCESSOR: Record<string, { addBos: boolean; addEos: boolean }> = {
  LlamaTokenizer: { addBos: true, addEos: false },
  CodeLlamaTokenizer: { addBos: true, addEos: false },
  GemmaTokenizer: { addBos: true, addEos: false },
  CohereTokenizer: { addBos: true, addEos: false },
  GPTNeoXTokenizer: { addBos: false, addEos: false },
};

/**
 * Model types whose tokenizer (transformers 4.57's TOKENIZER_MAPPING) is one of the classes
 * above: AutoTokenizer picks the class from config.json's model_type when tokenizer_config.json
 * names none (deepen's own checkpoints: model_type "llama", no tokenizer_config.json).
 */
const CLASS_OF_MODEL_TYPE: Record<string, string> = Object.fromEntries([
  ...['llama', 'llama4', 'llama4_text', 'mistral', 'mistral3', 'ministral', 'mixtral', 'phi3', 'phimoe', 'deepseek_v2', 'deepseek_v3', 'arcee', 'diffllama', 'jamba', 'jetmoe', 'persimmon', 'zamba', 'zamba2', 'ernie4_5', 'ernie4_5_moe'].map((t) => [t, 'LlamaTokenizer']),
  ['code_llama', 'CodeLlamaTokenizer'],
  ...['gemma', 'gemma2', 'gemma3', 'gemma3_text', 'recurrent_gemma'].map((t) => [t, 'GemmaTokenizer']),
  ...['cohere', 'cohere2'].map((t) => [t, 'CohereTokenizer']),
  ...['gpt_neox', 'olmo', 'olmo2', 'olmoe', 'stablelm', 'mpt', 'mamba', 'mamba2', 'falcon_mamba'].map((t) => [t, 'GPTNeoXTokenizer']),
]);

/** Ids added around a text encoded with special tokens. */
export interface Framing {
  prefix: number[];
  suffix: number[];
  /** Where it comes from: tokenizer.json's post_processor, or add_bos_token/add_eos_token (see REBUILDS_POST_PROCESSOR). */
  rule: 'post_processor' | 'add_bos_token';
}

/**
 * The framing of tokenizer.json's post_processor for a single sequence, as the Rust library
 * applies it: TemplateProcessing's special tokens before and after `$A`, Bert/Roberta's cls
 * and sep; ByteLevel adds nothing (it only adjusts offsets); a Sequence those of its one
 * processor that adds tokens.
 * Its errors are plain Errors: the caller says which file they are about.
 */
function postProcessorFraming(pp: unknown): { prefix: number[]; suffix: number[] } {
  if (pp === null || pp === undefined) return { prefix: [], suffix: [] };
  const p = pp as Json;
  switch (p.type) {
    case 'ByteLevel':
      return { prefix: [], suffix: [] };
    case 'TemplateProcessing': {
      const single = p.single as Array<{ SpecialToken?: { id: string }; Sequence?: { id: string } }>;
      const specials = (p.special_tokens ?? {}) as Record<string, { ids: number[] }>;
      const at = single.findIndex((piece) => piece.Sequence?.id === 'A');
      if (at < 0) throw new Error('post_processor TemplateProcessing has no $A in "single"');
      const ids = (pieces: typeof single) =>
        pieces.flatMap((piece) => {
          if (!piece.SpecialToken) throw new Error('post_processor TemplateProcessing: "single" holds a sequence other than $A');
          const special = specials[piece.SpecialToken.id];
          if (!special) throw new Error(`post_processor TemplateProcessing: special token "${piece.SpecialToken.id}" is not in special_tokens`);
          return special.ids;
        });
      return { prefix: ids(single.slice(0, at)), suffix: ids(single.slice(at + 1)) };
    }
    case 'BertProcessing':
    case 'RobertaProcessing': {
      const [, cls] = p.cls as [string, number];
      const [, sep] = p.sep as [string, number];
      return { prefix: [cls], suffix: [sep] };
    }
    case 'Sequence': {
      // The Rust library hands each piece of a processor's output to the next one as a
      // sequence of its own (TemplateProcessing then BertProcessing puts a sep after every
      // template piece), so only one processor may add tokens here.
      const framings = (p.processors as unknown[]).map(postProcessorFraming).filter((f) => f.prefix.length + f.suffix.length > 0);
      if (framings.length > 1) throw new Error('post_processor Sequence with more than one processor adding special tokens is not supported for add_special_tokens');
      return framings[0] ?? { prefix: [], suffix: [] };
    }
    default:
      throw new Error(`post_processor type "${String(p.type)}" is not supported for add_special_tokens`);
  }
}

/**
 * How transformers 4.x frames one text encoded with add_special_tokens=True. Classes that
 * rebuild the post-processor use `[bos if add_bos_token] $A [eos if add_eos_token]` (with the
 * class's defaults where the config does not set them); every other tokenizer uses
 * tokenizer.json's post_processor. transformers 5 drops add_bos_token/add_eos_token whenever
 * tokenizer.json exists and keeps its post_processor; deepen follows 4.x, whose framing
 * (DeepSeek-V3: BOS) is the one these models were trained and evaluated with.
 */
export function framingOf(
  json: Json,
  config: Json | null,
  modelType: string | null,
  special: { bos: number | null; eos: number | null },
  source: string,
): Framing {
  const named = typeof config?.tokenizer_class === 'string' ? config.tokenizer_class.replace(/Fast$/, '') : null;
  const cls = named ?? (modelType !== null ? (CLASS_OF_MODEL_TYPE[modelType] ?? null) : null);
  const rebuild = cls !== null ? REBUILDS_POST_PROCESSOR[cls] : undefined;
  if (!rebuild) return { ...postProcessorFraming(json.post_processor), rule: 'post_processor' };
  const flag = (key: 'add_bos_token' | 'add_eos_token', fallback: boolean): { value: boolean; explicit: boolean } => {
    const value = config?.[key];
    if (value === undefined || value === null) return { value: fallback, explicit: false };
    if (typeof value !== 'boolean') throw new TokenizerError(`${source}: ${key} must be true or false`);
    return { value, explicit: true };
  };
  const addBos = flag('add_bos_token', rebuild.addBos);
  const addEos = flag('add_eos_token', rebuild.addEos);
  // transformers raises here ("add_bos_token = True but bos_token = None"); a default that
  // cannot apply (a tokenizer without that token) adds nothing instead.
  if (addBos.value && special.bos === null && addBos.explicit) throw new TokenizerError(`${source}: add_bos_token is true but the tokenizer has no bos_token`);
  if (addEos.value && special.eos === null && addEos.explicit) throw new TokenizerError(`${source}: add_eos_token is true but the tokenizer has no eos_token`);
  return {
    prefix: addBos.value && special.bos !== null ? [special.bos] : [],
    suffix: addEos.value && special.eos !== null ? [special.eos] : [],
    rule: 'add_bos_token',
  };
}
