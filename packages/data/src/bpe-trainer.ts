import { BYTE_TO_CHAR, byteLevelPreTokens } from './byte-level.js';

export interface TrainBpeOptions {
  /** Total vocabulary size, special tokens and the 256 byte symbols included. */
  vocabSize: number;
  /** Special tokens, given ids 0, 1, ... in this order. Default <unk>, <s>, </s>, <pad> (LLaMA's ids 0-2). */
  specialTokens?: string[];
  /** Pairs seen fewer times than this are never merged. Default 2. */
  minFrequency?: number;
}

/** A Hugging Face tokenizer.json (the subset deepen writes). */
export interface TokenizerJson {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: Array<{ id: number; content: string; single_word: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean; special: boolean }>;
  normalizer: null;
  pre_tokenizer: Record<string, unknown>;
  post_processor: Record<string, unknown> | null;
  decoder: Record<string, unknown>;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    merges: string[];
  };
}

export const DEFAULT_SPECIAL_TOKENS = ['<unk>', '<s>', '</s>', '<pad>'];

const KEY_BASE = 1 << 21; // symbol ids stay below 2^21, so a * KEY_BASE + b is a unique safe integer
const pairKey = (a: number, b: number) => a * KEY_BASE + b;

/** Max-heap of (count, pair) with lazy deletion; ties go to the smaller pair key (older symbols first). */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  private better(i: number, j: number): boolean {
    const ci = this.counts[i] as number;
    const cj = this.counts[j] as number;
    return ci > cj || (ci === cj && (this.keys[i] as number) < (this.keys[j] as number));
  }
  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j] as number, this.counts[i] as number];
    [this.keys[i], this.keys[j]] = [this.keys[j] as number, this.keys[i] as number];
  }
  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.better(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }
  pop(): [number, number] | null {
    if (this.counts.length === 0) return null;
    const top: [number, number] = [this.counts[0] as number, this.keys[0] as number];
    const lastCount = this.counts.pop() as number;
    const lastKey = this.keys.pop() as number;
    if (this.counts.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < this.counts.length && this.better(l, best)) best = l;
        if (r < this.counts.length && this.better(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/**
 * Trains a byte-level BPE tokenizer (GPT-2 style) and returns it as a Hugging Face
 * tokenizer.json. Deterministic: the same texts and options give the same file. Training
 * stops early, with a smaller vocabulary, when no pair occurs `minFrequency` times.
 */
export function trainByteLevelBpe(texts: Iterable<string>, options: TrainBpeOptions): TokenizerJson {
  const specials = options.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  const minFrequency = options.minFrequency ?? 2;
  const base = specials.length + 256;
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < base) {
    throw new Error(`vocabSize must be an integer of at least ${base} (${specials.length} special tokens + 256 bytes), got ${options.vocabSize}`);
  }
  if (options.vocabSize >= KEY_BASE) throw new Error(`vocabSize must be below ${KEY_BASE}`);
  if (new Set(specials).size !== specials.length) throw new Error('special tokens must be distinct');

  // Symbol table: specials, then the 256 byte symbols in byte order, then merges.
  const symbols: string[] = [...specials, ...BYTE_TO_CHAR];
  const byteId = new Map<string, number>(BYTE_TO_CHAR.map((c, b) => [c, specials.length + b]));

  const wordCounts = new Map<string, number>();
  for (const text of texts) for (const piece of byteLevelPreTokens(text)) wordCounts.set(piece, (wordCounts.get(piece) ?? 0) + 1);
  // Sorted so that word indices (and with them every tie-break) do not depend on input order.
  const entries = [...wordCounts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const words = entries.map(([w]) => Array.from(w, (c) => byteId.get(c) as number));
  const freq = entries.map(([, c]) => c);

  const counts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: 1 | -1, touched: Set<number>) => {
    const s = words[w] as number[];
    const f = freq[w] as number;
    for (let i = 0; i + 1 < s.length; i++) {
      const key = pairKey(s[i] as number, s[i + 1] as number);
      counts.set(key, (counts.get(key) ?? 0) + sign * f);
      touched.add(key);
      if (sign > 0) {
        let set = where.get(key);
        if (!set) where.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  const initial = new Set<number>();
  for (let w = 0; w < words.length; w++) addPairs(w, 1, initial);
  const heap = new PairHeap();
  for (const key of initial) heap.push(counts.get(key) as number, key);

  const merges: string[] = [];
  while (symbols.length < options.vocabSize) {
    let top = heap.pop();
    while (top && counts.get(top[1]) !== top[0]) top = heap.pop(); // skip stale entries
    if (!top || top[0] < minFrequency) break;
    const [, key] = top;
    const a = Math.floor(key / KEY_BASE);
    const b = key % KEY_BASE;
    const merged = symbols.length;
    symbols.push((symbols[a] as string) + (symbols[b] as string));
    merges.push(`${symbols[a]} ${symbols[b]}`);
    const touched = new Set<number>();
    for (const w of [...(where.get(key) ?? [])].sort((x, y) => x - y)) {
      const s = words[w] as number[];
      addPairs(w, -1, touched);
      const next: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(s[i] as number);
      }
      words[w] = next;
      addPairs(w, 1, touched);
    }
    where.delete(key);
    for (const k of touched) {
      const c = counts.get(k) as number;
      if (c > 0) heap.push(c, k);
      else counts.delete(k);
    }
  }

  const vocab: Record<string, number> = {};
  symbols.forEach((s, id) => (vocab[s] = id));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: byteLevelBpeModel(vocab, merges),
  };
}

/**
 * The "model" part of a byte-level BPE tokenizer.json (GPT-2 style: no unknown token, no
 * byte fallback, no subword affixes), as Hugging Face writes it. `ignoreMerges` is Llama 3's:
 * a word that is a token as a whole skips the merges.
 */
export function byteLevelBpeModel(vocab: Record<string, number>, merges: string[], options: { ignoreMerges?: boolean } = {}) {
  return {
    type: 'BPE' as const,
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: options.ignoreMerges ?? false,
    vocab,
    merges,
  };
}
