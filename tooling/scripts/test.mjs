#!/usr/bin/env node
// The workspace's test command: type checks, lint and every package's vitest suite through
// turbo (dependency order, caching), then one closing line summed over all packages from
// the JSON reports vitest writes, so CI and people read a single "N passed, N failed".
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
const reportName = '.vitest-report.json';
const packageDirs = ['packages', 'apps']
  .map((d) => join(root, d))
  .filter((d) => existsSync(d))
  .flatMap((d) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name)));

// A stale report from an earlier run must never count towards this one.
for (const dir of packageDirs) rmSync(join(dir, reportName), { force: true });

const turbo = spawnSync('pnpm', ['exec', 'turbo', 'run', 'typecheck', 'lint', 'test', '--continue', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});

let passed = 0;
let failed = 0;
let skipped = 0;
const suitesWithoutReport = [];
for (const dir of packageDirs) {
  const file = join(dir, reportName);
  if (!existsSync(file)) {
    if (existsSync(join(dir, 'vitest.config.ts'))) suitesWithoutReport.push(dir.slice(root.length + 1));
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests ?? 0;
  const failedTests = report.numFailedTests ?? 0;
  // A file that fails to load has no failed tests but a failed suite: count it once.
  failed += failedTests > 0 ? failedTests : (report.numFailedTestSuites ?? 0);
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
}

// The npm story as a user meets it (tooling/scripts/npm-install-check.mjs): packed tarballs,
// plain npm in an empty folder, one copy of TensorFlow.js, `npx pretrain train --steps 5`.
// Counted as one test; DEEPEN_SKIP_NPM_CHECK=1 skips it (reported as skipped) for quick loops.
if (process.env.DEEPEN_SKIP_NPM_CHECK === '1') skipped += 1;
else if ((turbo.status ?? 1) === 0) {
  const check = spawnSync(process.execPath, [join(root, 'tooling', 'scripts', 'npm-install-check.mjs')], { cwd: root, stdio: 'inherit' });
  if (check.status === 0) passed += 1;
  else {
    failed += 1;
    console.log('npm install check failed');
  }
}

console.log('');
if (suitesWithoutReport.length > 0) console.log(`no test report from: ${suitesWithoutReport.join(', ')}`);
const status = turbo.status ?? 1;
if (status !== 0 && failed === 0) failed = 1; // typecheck, lint or a crashed runner failed
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(status !== 0 ? status : failed > 0 || passed === 0 ? 1 : 0);
