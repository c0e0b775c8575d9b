
/** A serializable snapshot of an Rng: store it in a checkpoint, restore it with Rng.fromState. */
export interface RngState {
  algorithm: 'xoshiro128**';
  /** The four 32-bit words of generator state. */
  words: [number, number, number, number];
  /** The second normal deviate of the last Box–Muller pair, not yet returned. */
  spareNormal: number | null;
}

const TWO_POW_32 = 4294967296;

/** splitmix32: spreads a seed over the state words so nearby seeds give unrelated streams. */
function splitmix32(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a over a string's UTF-16 code units: turns labels and string seeds into 32 bits. */
function hashString(text: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

/**
 * A seeded random source (xoshiro128**), reproducible across machines and engines, used for
 * parameter initialisation and data shuffling. Its state is four integers, so a run can be
 * checkpointed and resumed exactly. `fork(label)` derives an independent stream (for example
 * one per layer) without advancing this one, so adding a consumer never shifts the others.
 */
export class Rng {
  private s: [number, number, number, number];
  private spare: number | null = null;

  private constructor(words: [number, number, number, number]) {
    if (words.every((w) => w === 0)) throw new Error('Rng: the all-zero state is invalid for xoshiro128**');
    this.s = words;
  }

  /** A generator seeded from an integer or a string. */
  static fromSeed(seed: number | string): Rng {
    const base = typeof seed === 'string' ? hashString(seed) : seedToUint32(seed);
    const next = splitmix32(base);
    return new Rng([next(), next(), next(), next()]);
  }

  /** A generator from raw state words (as in the reference C code's test vectors). */
  static fromWords(words: [number, number, number, number]): Rng {
    return new Rng(words.map((w) => w >>> 0) as [number, number, number, number]);
  }

  static fromState(state: RngState): Rng {
    if (state?.algorithm !== 'xoshiro128**' || !Array.isArray(state.words) || state.words.length !== 4) {
      throw new Error(`Rng.fromState: not an xoshiro128** state: ${JSON.stringify(state)}`);
    }
    const rng = Rng.fromWords(state.words);
    rng.spare = state.spareNormal ?? null;
    return rng;
  }

  state(): RngState {
    return { algorithm: 'xoshiro128**', words: [...this.s], spareNormal: this.spare };
  }

  /** An independent generator for a named purpose; does not advance this one. */
  fork(label: string | number): Rng {
    let h = hashString(String(label));
    for (const w of this.s) h = hashString(w.toString(16), h);
    return Rng.fromSeed(h);
  }

  /** The next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] = (s[2] ^ s[0]) >>> 0;
    s[3] = (s[3] ^ s[1]) >>> 0;
    s[1] = (s[1] ^ s[2]) >>> 0;
    s[0] = (s[0] ^ s[3]) >>> 0;
    s[2] = (s[2] ^ t) >>> 0;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) throw new Error(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    let x: number;
    do x = this.nextUint32();
    while (x >= limit);
    return x % n;
  }

  /** A normal deviate (Box–Muller; the pair's second value is kept for the next call). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Normal deviates, each redrawn until within `bound` standard deviations. */
  truncatedNormal(mean: number, std: number, bound = 2): number {
    for (;;) {
      const z = this.normal();
      if (Math.abs(z) <= bound) return mean + std * z;
    }
  }

  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  fillUniform(out: Float32Array, low = 0, high = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = low + (high - low) * this.float();
    return out;
  }

  /** Shuffles in place (Fisher–Yates) and returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Uint32Array {
    const out = new Uint32Array(n);
    for (let i = 0; i < n; i++) out[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = out[i] as number;
      out[i] = out[j] as number;
      out[j] = tmp;
    }
    return out;
  }
}

function seedToUint32(seed: number): number {
  if (!Number.isFinite(seed) || !Number.isInteger(seed)) throw new Error(`Rng seed must be an integer or a string, got ${seed}`);
  // Fold seeds beyond 32 bits instead of silently truncating them into collisions.
  const high = Math.floor(seed / TWO_POW_32);
  return (seed ^ Math.imul(high, 0x9e3779b1)) >>> 0;
}

