#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { BackendUnavailableError, initBackend } from './init.js';
import { formatBackendReport } from './report.js';
import { ENGINE_ORDER } from './engines.js';

const HELP = `deepen-backend: which TensorFlow.js engine deepen runs on, and why.

Usage:
  deepen-backend info [--backend NAME] [--json]

Options:
  --backend NAME  engine to start: auto (default), ${ENGINE_ORDER.join(', ')}
                  (without it, the DEEPEN_BACKEND environment variable is used)
  --json          print the report as JSON
  -h, --help      show this help
`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        backend: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    process.stderr.write(`deepen-backend: ${(error as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const [command = 'info', ...rest] = positionals;
  if (command !== 'info' || rest.length > 0) {
    process.stderr.write(`deepen-backend: unknown command '${[command, ...rest].join(' ')}'\n\n${HELP}`);
    return 2;
  }
  try {
    const report = await initBackend(values.backend === undefined ? {} : { engine: values.backend, engineSource: '--backend' });
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatBackendReport(report)}\n`);
    return 0;
  } catch (error) {
    const message = error instanceof BackendUnavailableError || error instanceof Error ? error.message : String(error);
    process.stderr.write(`deepen-backend: ${message}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
