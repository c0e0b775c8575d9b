import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('./cli.ts', import.meta.url));

/** Runs the real CLI in its own process (through tsx, so the test needs no build). */
function run(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DEEPEN_BACKEND: '', ...env },
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('deepen-backend CLI', () => {
  it('prints the engine report', () => {
    const { code, stdout } = run(['info']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^engine {5}(node-gpu|node|native|wasm|cpu) /m);
    expect(stdout).toMatch(/^device {5}/m);
    expect(stdout).toMatch(/^threads {4}\d+/m);
  });

  it('prints JSON and honours --backend and DEEPEN_BACKEND', () => {
    const viaFlag = run(['info', '--json', '--backend', 'cpu']);
    expect(viaFlag.code).toBe(0);
    expect(JSON.parse(viaFlag.stdout)).toMatchObject({ engine: 'cpu', requestedBy: '--backend', simd: false });
    const viaEnv = run(['info', '--json'], { DEEPEN_BACKEND: 'cpu' });
    expect(JSON.parse(viaEnv.stdout)).toMatchObject({ engine: 'cpu', requestedBy: 'DEEPEN_BACKEND=cpu' });
  });

  it('exits non-zero with a message that names what is wrong', () => {
    const unknownFlag = run(['info', '--bogus']);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toMatch(/Unknown option '--bogus'/);
    const unknownEngine = run(['info', '--backend', 'tpu']);
    expect(unknownEngine.code).toBe(1);
    expect(unknownEngine.stderr).toMatch(/--backend: unknown engine 'tpu'; known engines: auto, node-gpu/);
    const unknownCommand = run(['train']);
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toMatch(/unknown command 'train'/);
  });
});
