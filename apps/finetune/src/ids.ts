import { randomBytes } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const ID_LENGTH = 24;

/** Prefixes of every id the service hands out (the OpenAI API's, where it has one). */
export const ID_PREFIX = {
  file: 'file-',
  job: 'ftjob-',
  event: 'ftevent-',
  checkpoint: 'ftckpt-',
  completion: 'cmpl-',
  chatCompletion: 'chatcmpl-',
  request: 'req_',
} as const;

/** A random id: the prefix and 24 base-62 characters (about 143 bits). */
export function newId(prefix: string): string {
  const bytes = randomBytes(ID_LENGTH * 2);
  let out = '';
  // Rejection sampling keeps every character equally likely.
  for (const b of bytes) {
    if (b >= 248) continue;
    out += ALPHABET[b % 62];
    if (out.length === ID_LENGTH) return prefix + out;
  }
  return newId(prefix);
}

/** Whether `id` has the exact shape of an id with this prefix (anything else is never looked up). */
export function isId(prefix: string, id: string): boolean {
  return id.length === prefix.length + ID_LENGTH && id.startsWith(prefix) && /^[A-Za-z0-9]+$/.test(id.slice(prefix.length));
}

/** Seconds since the epoch, the API's timestamp unit. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
