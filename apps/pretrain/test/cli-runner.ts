import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
// An absolute URL, since the child runs in a temporary folder where 'tsx' does not resolve.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
// The workspace packages resolve to their sources too, so the CLI runs the current code of all of them.
const SOURCES = ['--conditions=@deepen/source', '--import', tsx];

/** The node arguments that run the CLI with `args` (for a test that drives the process itself). */
export function cliArgs(args: string[]): string[] {
  return [...SOURCES, cli, ...args];
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The real `pretrain` CLI, run in its own process (through tsx, so no build is needed), in a
 * fresh temporary folder with its own cache, and with no Hugging Face token or endpoint of
 * the machine running the tests.
 */
export function cliRunner(prefix: string) {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const env = { ...process.env, DEEPEN_CACHE: join(root, 'cache'), DEEPEN_BACKEND: '', HF_TOKEN: '', HF_HOME: join(root, 'hf-home'), HF_ENDPOINT: '' };
  const run = (args: string[], cwd = root): CliResult => {
    const r = spawnSync(process.execPath, [...SOURCES, cli, ...args], { cwd, env, encoding: 'utf8', timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  /** The same without blocking this process, for commands that talk to a server the test runs. */
  const runAsync = (args: string[], extraEnv: Record<string, string> = {}): Promise<CliResult> => {
    const child = spawn(process.execPath, [...SOURCES, cli, ...args], { cwd: root, env: { ...env, ...extraEnv }, timeout: 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  };
  return { root, env, run, runAsync };
}
