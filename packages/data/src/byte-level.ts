/**
 * The byte-level alphabet of GPT-2 and Hugging Face's ByteLevel pre-tokenizer: every byte
 * maps to a printable character (space becomes 'Ġ', newline 'Ċ'), so any text becomes a
 * string over 256 symbols and BPE never needs an unknown token.
 */
function buildByteTable(): string[] {
  const bytes: number[] = [];
  for (let b = '!'.charCodeAt(0); b <= '~'.charCodeAt(0); b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const chars = bytes.map((b) => String.fromCharCode(b));
  let extra = 0;
  const table = new Array<string>(256);
  for (let b = 0; b < 256; b++) {
    const i = bytes.indexOf(b);
    table[b] = i >= 0 ? (chars[i] as string) : String.fromCharCode(256 + extra++);
  }
  return table;
}

export const BYTE_TO_CHAR: readonly string[] = buildByteTable();

/** GPT-2's split pattern, as the ByteLevel pre-tokenizer (use_regex: true) applies it. */
export const BYTE_LEVEL_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

const encoder = new TextEncoder();

/** Splits text into pre-tokens and maps each to its byte-level string. */
export function byteLevelPreTokens(text: string): string[] {
  const out: string[] = [];
  for (const match of text.matchAll(BYTE_LEVEL_PATTERN)) {
    const bytes = encoder.encode(match[0]);
    let s = '';
    for (const b of bytes) s += BYTE_TO_CHAR[b];
    out.push(s);
  }
  return out;
}
