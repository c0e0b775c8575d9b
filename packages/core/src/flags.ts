import { parseArgs } from 'node:util';

/** A command-line mistake: printed with the command's usage hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  type: 'string' | 'int' | 'float' | 'bool' | 'list';
  description: string;
  /** Shown in help as the value's name (e.g. N, PATH). */
  value?: string;
  default?: string | number | boolean;
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** For floats: the bound itself is not allowed. */
  exclusiveMin?: boolean;
}

export type FlagValues = Record<string, string | number | boolean | string[] | undefined>;

/**
 * Parses and validates command-line flags (the deepen apps share it); every error names the
 * flag and what was wrong. `given` holds the flags the user actually passed.
 */
export function parseFlags(command: string, argv: string[], specs: Record<string, FlagSpec>, maxPositionals = 0): { values: FlagValues; positionals: string[]; given: Set<string> } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries([
        ...Object.entries(specs).map(([name, spec]) => [name, { type: spec.type === 'bool' ? 'boolean' : 'string' }]),
        ['help', { type: 'boolean', short: 'h' }],
      ]) as Parameters<typeof parseArgs>[0] extends infer P ? P extends { options?: infer O } ? O : never : never,
    });
  } catch (error) {
    const message = (error as Error).message
      .replace(/^Unknown option '([^']+)'.*$/s, 'unknown flag $1')
      .replace(/^Option '(?:-\w, )?(--[\w-]+)(?: <value>)?' argument missing$/, '$1 needs a value');
    throw new UsageError(message);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[maxPositionals]}'`);
  }
  const values: FlagValues = {};
  const given = new Set<string>();
  for (const [name, spec] of Object.entries(specs)) {
    const raw = (parsed.values as Record<string, string | boolean | undefined>)[name];
    if (raw !== undefined) given.add(name);
    const source = raw ?? spec.default;
    if (source === undefined) continue;
    values[name] = convert(name, spec, source);
  }
  if (parsed.values.help) values.help = true;
  return { values, positionals: parsed.positionals, given };
}

function convert(name: string, spec: FlagSpec, raw: string | number | boolean): FlagValues[string] {
  const flag = `--${name}`;
  if (spec.type === 'bool') return Boolean(raw);
  const text = String(raw);
  if (spec.type === 'string') {
    if (text === '') throw new UsageError(`${flag} needs a value`);
    if (spec.choices && !spec.choices.includes(text)) throw new UsageError(`${flag} must be one of ${spec.choices.join(', ')}, got '${text}'`);
    return text;
  }
  if (spec.type === 'list') {
    const items = text.split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new UsageError(`${flag} needs a comma-separated list`);
    return items;
  }
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new UsageError(`${flag} must be a number, got '${text}'`);
  if (spec.type === 'int' && !Number.isInteger(value)) throw new UsageError(`${flag} must be an integer, got '${text}'`);
  if (spec.min !== undefined && (spec.exclusiveMin ? value <= spec.min : value < spec.min)) {
    throw new UsageError(`${flag} must be ${spec.exclusiveMin ? 'greater than' : 'at least'} ${spec.min}, got ${text}`);
  }
  if (spec.max !== undefined && value > spec.max) throw new UsageError(`${flag} must be at most ${spec.max}, got ${text}`);
  return value;
}

/** Help text for a command from its flag specs. */
export function helpText(usage: string, summary: string, specs: Record<string, FlagSpec>): string {
  const rows = Object.entries(specs).map(([name, spec]) => {
    const left = `--${name}${spec.type === 'bool' ? '' : ` ${spec.value ?? (spec.type === 'int' || spec.type === 'float' ? 'N' : 'VALUE')}`}`;
    const extra = [spec.choices ? `one of ${spec.choices.join(', ')}` : '', spec.default !== undefined && spec.type !== 'bool' ? `default ${spec.default}` : ''].filter(Boolean).join('; ');
    return [left, `${spec.description}${extra ? ` (${extra})` : ''}`];
  });
  const width = Math.max(...rows.map(([l]) => l!.length), 10);
  return `${summary}\n\nUsage:\n  ${usage}\n\nOptions:\n${rows.map(([l, r]) => `  ${l!.padEnd(width)}  ${r}`).join('\n')}\n  ${'-h, --help'.padEnd(width)}  show this help\n`;
}
