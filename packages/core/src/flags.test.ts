import { describe, expect, it } from 'vitest';
import { helpText, parseFlags, UsageError, type FlagSpec } from './flags.js';

const SPECS: Record<string, FlagSpec> = {
  port: { type: 'int', min: 0, max: 65535, default: 8080, description: 'port' },
  host: { type: 'string', value: 'ADDR', default: '127.0.0.1', description: 'address' },
  lr: { type: 'float', min: 0, exclusiveMin: true, description: 'learning rate' },
  mode: { type: 'string', choices: ['a', 'b'], description: 'mode' },
  model: { type: 'list', value: 'NAME=PATH', description: 'models' },
  quiet: { type: 'bool', description: 'say less' },
};

describe('parseFlags', () => {
  it('converts values, applies defaults and records what was given', () => {
    const { values, given, positionals } = parseFlags('x', ['--port', '9000', '--model', 'a=/x, b=/y', '--quiet', 'pos'], SPECS, 1);
    expect(values).toEqual({ port: 9000, host: '127.0.0.1', model: ['a=/x', 'b=/y'], quiet: true });
    expect([...given].sort()).toEqual(['model', 'port', 'quiet']);
    expect(positionals).toEqual(['pos']);
  });

  it('names the flag in every error', () => {
    const cases: Array<[string[], string]> = [
      [['--prot', '1'], 'unknown flag --prot'],
      [['--port'], '--port needs a value'],
      [['--port', 'x'], "--port must be a number, got 'x'"],
      [['--port', '1.5'], "--port must be an integer, got '1.5'"],
      [['--port', '70000'], '--port must be at most 65535, got 70000'],
      [['--lr', '0'], '--lr must be greater than 0, got 0'],
      [['--mode', 'c'], "--mode must be one of a, b, got 'c'"],
      [['extra'], "unexpected argument 'extra'"],
    ];
    for (const [argv, message] of cases) {
      expect(() => parseFlags('x', argv, SPECS), argv.join(' ')).toThrow(new UsageError(message));
    }
  });

  it('writes help from the specs', () => {
    const text = helpText('x [options]', 'Does x.', SPECS);
    expect(text.startsWith('Does x.\n\nUsage:\n  x [options]\n\nOptions:\n')).toBe(true);
    expect(text).toMatch(/--port N\s+port \(default 8080\)/);
    expect(text).toMatch(/--mode VALUE\s+mode \(one of a, b\)/);
    expect(text).toMatch(/-h, --help\s+show this help/);
  });
});
