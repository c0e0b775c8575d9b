import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTrainingFile, validateTrainingFile } from './training-file.js';

const write = (content: string | Buffer) => {
  const path = join(mkdtempSync(join(tmpdir(), 'deepen-jsonl-')), 'train.jsonl');
  writeFileSync(path, content);
  return path;
};

describe('training files', () => {
  it('reads CRLF line ends, a byte-order mark and blank lines, numbering lines as an editor does', async () => {
    const path = write('\ufeff{"prompt": "a", "completion": " b"}\r\n\r\n{"prompt": "c", "completion": " d"}')
    const lines = [];
    for await (const e of readTrainingFile(path)) lines.push([e.line, e.record]);
    expect(lines).toEqual([
      [1, { prompt: 'a', completion: ' b' }],
      [3, { prompt: 'c', completion: ' d' }],
    ]);
    expect(await validateTrainingFile(path)).toEqual({ format: 'prompt_completion', examples: 2 });
  });

  it('names the right line far into a large file (lines split across read chunks)', async () => {
    const good = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `question ${i}` }, { role: 'assistant', content: `answer ${i}` }] }));
    good.splice(4321, 0, '{"messages": [{"role": "user", "content": "no reply"}]}');
    await expect(validateTrainingFile(write(good.join('\n')))).rejects.toThrow('line 4322: the conversation has no assistant message with content: there is nothing to train on');
    good.splice(4321, 1);
    expect(await validateTrainingFile(write(good.join('\n')))).toEqual({ format: 'chat', examples: 5000 });
  });

  it('allows an empty prompt and a system message, and names nested fields', async () => {
    expect(await validateTrainingFile(write('{"prompt": "", "completion": "x"}\n'))).toEqual({ format: 'prompt_completion', examples: 1 });
    const chat = { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] };
    expect(await validateTrainingFile(write(JSON.stringify(chat)))).toEqual({ format: 'chat', examples: 1 });
    await expect(validateTrainingFile(write('{"messages": [{"role": "user", "content": "hi", "name": "bob"}]}'))).rejects.toThrow("line 1: unknown field 'messages[0].name' (allowed: role, content)");
    await expect(validateTrainingFile(write('{"messages": [{"role": "user", "content": 5}]}'))).rejects.toThrow('line 1: messages[0].content must be a string, got number');
    await expect(validateTrainingFile(write('{"messages": []}'))).rejects.toThrow("line 1: 'messages' must be a non-empty array, got an array");
    await expect(validateTrainingFile(write('{}'))).rejects.toThrow('line 1: expected {"prompt": ..., "completion": ...} or {"messages": [...]}, got an object with no fields');
  });
});
