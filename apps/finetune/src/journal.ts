import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncPath, JsonLinesWriter } from '@deepen/core';
import { JOURNALED_TYPES, type JournaledMessage } from './worker/protocol.js';

/** A job's event journal, in its folder. */
export const JOURNAL_FILE = 'events.jsonl';

/**
 * The job's event journal, as its training worker writes it: every message that becomes an
 * event, one JSON line each, appended before the message is sent to the service and fsynced
 * before each checkpoint is written. The service records messages as they arrive; after it was
 * killed (perhaps while stopped, its worker training on) it reads the journal for what it never
 * received, so every step up to the checkpoint a job resumes from has its events. Every run of
 * the worker appends to the same journal.
 */
export class JournalWriter {
  private constructor(private readonly file: JsonLinesWriter) {}

  get path(): string {
    return this.file.path;
  }

  /** Opens the journal for appending; a last line cut short (power lost mid-write) is dropped first. */
  static open(path: string): JournalWriter {
    const created = !existsSync(path);
    const fd = openSync(path, 'a+');
    try {
      const size = fstatSync(fd).size;
      const complete = completeLength(fd, size);
      if (complete < size) ftruncateSync(fd, complete);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    // The file's name must survive power loss as well as its lines.
    if (created) fsyncPath(dirname(path));
    return new JournalWriter(new JsonLinesWriter(path, 'the journal', fd));
  }

  append(message: JournaledMessage): void {
    this.file.append(message);
  }

  /** Makes every line appended so far durable. */
  sync(): void {
    this.file.sync();
  }

  close(): void {
    this.file.close();
  }
}

/** The length of a file up to the end of its last complete line. */
function completeLength(fd: number, size: number): number {
  const chunk = Buffer.alloc(64 * 1024);
  for (let end = size; end > 0; ) {
    const start = Math.max(0, end - chunk.length);
    const read = readSync(fd, chunk, 0, end - start, start);
    const newline = chunk.subarray(0, read).lastIndexOf(0x0a);
    if (newline >= 0) return start + newline + 1;
    end = start;
  }
  return 0;
}

const isJournaled = (value: unknown): value is JournaledMessage =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as JournaledMessage).key === 'string' &&
  typeof (value as JournaledMessage).time === 'number' &&
  JOURNALED_TYPES.includes((value as JournaledMessage).type);

/**
 * The messages of a journal, oldest first ([] without one). A last line without its newline
 * is being written or was cut by a crash and is left out; any other line that is not a
 * journaled message is reported through `warn` (with its line number) and skipped.
 */
export function readJournal(path: string, warn: (problem: string) => void): JournaledMessage[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  lines.pop(); // after the last newline: '' or an unfinished line
  const messages: JournaledMessage[] = [];
  lines.forEach((line, i) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    if (isJournaled(value)) messages.push(value);
    else warn(`${path}:${i + 1}: not a journaled message (${line.length > 80 ? `${line.slice(0, 80)}…` : line}); skipped`);
  });
  return messages;
}
