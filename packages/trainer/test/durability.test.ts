import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@deepen/backend';
import { currentDir, readMetrics, repairDir } from '@deepen/core';
import { EMBED, loadCheckpoint } from '@deepen/models';
import { beforeAll, describe, expect, it } from 'vitest';
import { listTrainingCheckpoints, loadTrainingState } from '../src/index.js';

// The crash tests of issue "One house": a process is SIGKILLed at random moments while it writes
// checkpoints, and every time the previous or the new checkpoint under its final name must be
// complete and load. The writer runs from source through tsx, like the tests themselves.
const here = dirname(fileURLToPath(import.meta.url));
const writer = join(here, 'fixtures', 'checkpoint-writer.ts');
const KILLS = 20;

/** Starts the writer, waits for its first completed save, kills it after a random delay; returns what it had reported. */
async function killWhileWriting(mode: 'replace' | 'train', target: string, delayMs: number): Promise<number[]> {
  const child = spawn(process.execPath, ['--conditions=@deepen/source', '--import', 'tsx', writer, mode, target], { cwd: here, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEEPEN_BACKEND: 'cpu' } });
  const reported: number[] = [];
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let buffered = '';
    let timer: NodeJS.Timeout | null = null;
    child.stdout.on('data', (d) => {
      buffered += d;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        reported.push(Number(buffered.slice(0, nl).split(' ')[1]));
        buffered = buffered.slice(nl + 1);
      }
      if (reported.length > 0 && timer === null) {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, delayMs);
      }
    });
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`checkpoint writer exited (${code ?? signal}) before it was killed:\n${stderr}`));
    });
  });
  await exited;
  return reported;
}

beforeAll(async () => {
  await initBackend({ engine: 'cpu' });
});

describe('checkpoints survive SIGKILL at random moments', () => {
  it(`replacing one checkpoint folder: after each of ${KILLS} kills the old or the new version loads`, async () => {
    const root = mkdtempSync(join(tmpdir(), 'deepen-kill-replace-'));
    const dir = join(root, 'ckpt');
    const seen = new Set<string>();
    for (let i = 0; i < KILLS; i++) {
      const reported = await killWhileWriting('replace', dir, Math.floor(Math.random() * 400));
      const last = reported.at(-1)!;
      // A reader sees the folder that stands for `dir` now, before any repair.
      const model = loadCheckpoint(dir);
      const version = model.param(EMBED).dataSync()[0]!;
      model.dispose();
      expect([last, last + 1]).toContain(version);
      seen.add(version === last ? 'old' : 'new');
      if (!existsSync(dir)) seen.add('between renames');
      repairDir(dir);
      expect(existsSync(dir)).toBe(true);
      expect(readdirSync(root)).toEqual(['ckpt']);
    }
    // Say which cases the random kills hit (the test holds for each).
    console.log(`replace: kills left the ${[...seen].join(', ')} checkpoint in place`);
  }, 300_000);

  it(`a training run: after each of ${KILLS} kills its newest checkpoint loads and the log covers it`, async () => {
    const run = mkdtempSync(join(tmpdir(), 'deepen-kill-train-'));
    for (let i = 0; i < KILLS; i++) {
      // Each kill starts a fresh run folder, so every kill lands on a run's own writes.
      const dir = join(run, `run-${i}`);
      const reported = await killWhileWriting('train', dir, Math.floor(Math.random() * 300));
      const checkpoints = listTrainingCheckpoints(dir);
      const newest = checkpoints.at(-1)!;
      const step = Number(/step-(\d+)$/.exec(newest)![1]);
      expect([reported.at(-1), reported.at(-1)! + 1]).toContain(step);
      const loaded = loadTrainingState(dir);
      expect(loaded.state.step).toBe(step);
      loaded.model.dispose();
      // Every step up to the checkpoint a resume starts from has its line in metrics.jsonl.
      const steps = readMetrics(dir).filter((e) => e.event === 'step').map((e) => (e as { step: number }).step);
      expect(steps.slice(0, step)).toEqual(Array.from({ length: step }, (_, k) => k + 1));
      for (const c of checkpoints) expect(currentDir(c)).toBe(c);
    }
  }, 300_000);
});

const strace = spawnSync('strace', ['-V']).status === 0;

describe.runIf(strace)('a checkpoint save under strace', () => {
  it('fsyncs every file before the rename that publishes the folder, and the folder after it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'deepen-strace-'));
    const run = join(root, 'run');
    const trace = join(root, 'trace.txt');
    // Trains with a checkpoint after each step; strace follows the process until the kill.
    const child = spawn('strace', ['-f', '-y', '-o', trace, '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', process.execPath, '--conditions=@deepen/source', '--import', 'tsx', writer, 'train', run], { cwd: here, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        if (/checkpoint 2\n/.test(d.toString())) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((resolve) => child.on('exit', resolve));
    const lines = readFileSync(trace, 'utf8').split('\n');
    const published = join(run, 'checkpoints', 'step-0000001');
    const publish = lines.findIndex((l) => /rename(at2?)?\(/.test(l) && l.includes(`"${published}"`));
    expect(publish, 'the rename that publishes step-0000001').toBeGreaterThan(0);
    const temp = /rename(?:at2?)?\((?:\d+<[^>]*>, )?"([^"]+)"/.exec(lines[publish]!)![1]!;
    const files = readdirSync(published);
    expect(files).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']));
    for (const file of files) {
      const synced = lines.slice(0, publish).some((l) => /^\d+\s+f(data)?sync\(\d+</.test(l) && l.includes(`<${join(temp, file)}>`));
      expect(synced, `fsync of ${file} before the publishing rename`).toBe(true);
    }
    const folderSynced = lines.slice(publish + 1).some((l) => /f(data)?sync\(\d+</.test(l) && l.includes(`<${join(run, 'checkpoints')}>`));
    expect(folderSynced, 'fsync of checkpoints/ after the rename').toBe(true);
  }, 120_000);
});
