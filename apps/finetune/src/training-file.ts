import { createReadStream } from 'node:fs';
import { CHAT_ROLES, type ChatMessage, type SftRecord } from '@deepen/data';

/** The two example formats a training file may use (one per file). */
export type TrainingFileFormat = 'prompt_completion' | 'chat';

/** A training file problem, with the 1-based line it is on (null for the file as a whole). */
export class TrainingFileError extends Error {
  constructor(
    readonly line: number | null,
    readonly reason: string,
  ) {
    super(line === null ? reason : `line ${line}: ${reason}`);
    this.name = 'TrainingFileError';
  }
}

const FORMAT_NAMES: Record<TrainingFileFormat, string> = { prompt_completion: 'a prompt/completion pair', chat: 'a conversation (messages)' };
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? `'${v.length > 40 ? `${v.slice(0, 40)}...` : v}'` : typeof v);

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], where: string, line: number): void {
  const unknown = Object.keys(value).find((k) => !allowed.includes(k));
  if (unknown !== undefined) throw new TrainingFileError(line, `unknown field '${where}${unknown}' (allowed: ${allowed.join(', ')})`);
}

function parseMessages(value: unknown, line: number): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) throw new TrainingFileError(line, `'messages' must be a non-empty array, got ${describe(value)}`);
  const messages = value.map((m, i): ChatMessage => {
    const where = `messages[${i}]`;
    if (!isObject(m)) throw new TrainingFileError(line, `${where} must be an object with role and content, got ${describe(m)}`);
    checkKeys(m, ['role', 'content'], `${where}.`, line);
    if (!CHAT_ROLES.includes(m.role as ChatMessage['role'])) throw new TrainingFileError(line, `${where}.role must be one of ${CHAT_ROLES.join(', ')}, got ${describe(m.role)}`);
    if (typeof m.content !== 'string') throw new TrainingFileError(line, `${where}.content must be a string, got ${describe(m.content)}`);
    return { role: m.role as ChatMessage['role'], content: m.content };
  });
  if (!messages.some((m) => m.role === 'assistant' && m.content.length > 0)) {
    throw new TrainingFileError(line, 'the conversation has no assistant message with content: there is nothing to train on');
  }
  return messages;
}

/** Checks one parsed line and returns the example it holds. */
export function parseExample(value: unknown, line: number): { format: TrainingFileFormat; record: SftRecord } {
  if (!isObject(value)) throw new TrainingFileError(line, `expected a JSON object, got ${describe(value)}`);
  if ('messages' in value) {
    checkKeys(value, ['messages'], '', line);
    return { format: 'chat', record: { messages: parseMessages(value.messages, line) } };
  }
  if (!('prompt' in value) && !('completion' in value)) {
    throw new TrainingFileError(line, `expected {"prompt": ..., "completion": ...} or {"messages": [...]}, got an object with ${Object.keys(value).length === 0 ? 'no fields' : `fields ${Object.keys(value).join(', ')}`}`);
  }
  checkKeys(value, ['prompt', 'completion'], '', line);
  if (typeof value.prompt !== 'string') throw new TrainingFileError(line, `'prompt' must be a string, got ${describe(value.prompt)}`);
  if (typeof value.completion !== 'string' || value.completion.length === 0) {
    throw new TrainingFileError(line, `'completion' must be a non-empty string, got ${describe(value.completion)}`);
  }
  return { format: 'prompt_completion', record: { prompt: value.prompt, completion: value.completion } };
}

/**
 * Reads a JSONL training file line by line (streaming, any size): every non-blank line must
 * be valid UTF-8, valid JSON and an example of the file's format. Throws at the first bad
 * line, naming it.
 */
export async function* readTrainingFile(path: string): AsyncGenerator<{ line: number; format: TrainingFileFormat; record: SftRecord }> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let format: { kind: TrainingFileFormat; line: number } | null = null;
  let pending: Buffer[] = [];
  let line = 0;
  function* parse(bytes: Buffer) {
    line++;
    let text: string;
    try {
      text = decoder.decode(line === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes);
    } catch {
      throw new TrainingFileError(line, 'not valid UTF-8');
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new TrainingFileError(line, `not valid JSON (${(error as Error).message})`);
    }
    const example = parseExample(value, line);
    if (format === null) format = { kind: example.format, line };
    else if (example.format !== format.kind) {
      throw new TrainingFileError(line, `this line is ${FORMAT_NAMES[example.format]} but line ${format.line} is ${FORMAT_NAMES[format.kind]}; use one format per file`);
    }
    yield { line, ...example };
  }
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, start)) {
      pending.push(chunk.subarray(start, i));
      yield* parse(Buffer.concat(pending));
      pending = [];
      start = i + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) yield* parse(Buffer.concat(pending));
}

/** Validates a whole training file: its format and number of examples. */
export async function validateTrainingFile(path: string): Promise<{ format: TrainingFileFormat; examples: number }> {
  let format: TrainingFileFormat | null = null;
  let examples = 0;
  for await (const example of readTrainingFile(path)) {
    format = example.format;
    examples++;
  }
  if (format === null) throw new TrainingFileError(null, 'the file holds no examples (every line is blank)');
  return { format, examples };
}
