import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JournalWriter, readJournal } from './journal.js';
import type { JournaledMessage } from './worker/protocol.js';

const journalPath = () => join(mkdtempSync(join(tmpdir(), 'deepen-journal-')), 'events.jsonl');
const step = (n: number): JournaledMessage => ({ key: `step-${n}`, time: 100 + n, type: 'step', step: n, totalSteps: 9, epoch: 1, loss: 1 / n, lr: 0.1, tokens: 8, tokensPerSecond: 80 });

describe('the job journal', () => {
  it('reads back what was appended, across runs of the worker', () => {
    const path = journalPath();
    const first = JournalWriter.open(path);
    first.append(step(1));
    first.append(step(2));
    first.sync();
    first.close();
    const second = JournalWriter.open(path);
    second.append(step(3));
    second.close();
    expect(readJournal(path, (p) => expect.fail(p))).toEqual([step(1), step(2), step(3)]);
  });

  it('leaves out a last line cut short, and drops it before appending again', () => {
    const path = journalPath();
    writeFileSync(path, `${JSON.stringify(step(1))}\n${JSON.stringify(step(2)).slice(0, 30)}`);
    expect(readJournal(path, (p) => expect.fail(p))).toEqual([step(1)]);
    const writer = JournalWriter.open(path);
    writer.append(step(2));
    writer.close();
    expect(readFileSync(path, 'utf8')).toBe(`${JSON.stringify(step(1))}\n${JSON.stringify(step(2))}\n`);
    expect(readJournal(path, (p) => expect.fail(p))).toEqual([step(1), step(2)]);
  });

  it('skips a damaged line in the middle, naming it', () => {
    const path = journalPath();
    writeFileSync(path, `${JSON.stringify(step(1))}\n{"key": "step-2", "ti\n${JSON.stringify({ key: 'x', time: 1, type: 'unknown' })}\n${JSON.stringify(step(3))}\n`);
    const problems: string[] = [];
    expect(readJournal(path, (p) => problems.push(p))).toEqual([step(1), step(3)]);
    expect(problems).toEqual([`${path}:2: not a journaled message ({"key": "step-2", "ti); skipped`, `${path}:3: not a journaled message ({"key":"x","time":1,"type":"unknown"}); skipped`]);
  });

  it('is empty before the worker wrote anything', () => {
    expect(readJournal(journalPath(), (p) => expect.fail(p))).toEqual([]);
    const path = journalPath();
    appendFileSync(path, '');
    expect(readJournal(path, (p) => expect.fail(p))).toEqual([]);
  });
});
