#!/usr/bin/env node
// The npm story, as a user meets it: pack every published package (pnpm pack turns workspace:
// and catalog: versions into real ones and applies publishConfig), install the tarballs plus
// @tensorflow/tfjs with plain npm in an empty folder outside the repository, check that the
// tree holds exactly one copy of TensorFlow.js, and run `npx pretrain train --steps 5`.
// Builds what is stale first (turbo's cache), needs the npm registry; exits non-zero on any failure.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..', '..');
// Every library package that is published (all of packages/ not marked private), and the CLI:
// a package added later is packed without anyone remembering to list it.
const PUBLISHED = [
  ...readdirSync(join(root, 'packages'))
    .map((name) => `packages/${name}`)
    .filter((dir) => JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')).private !== true),
  'apps/pretrain',
];
const tfjsVersion = JSON.parse(readFileSync(join(root, 'packages/backend/package.json'), 'utf8')).peerDependencies['@tensorflow/tfjs'];

const work = mkdtempSync(join(tmpdir(), 'deepen-npm-'));
const tarballs = join(work, 'tarballs');
const app = join(work, 'app');
mkdirSync(tarballs);
mkdirSync(app);
/** @param {string} what */
const step = (what) => console.log(`npm-install-check: ${what}`);
/** @param {string} why */
const fail = (why) => {
  console.error(`npm-install-check: ${why} (left in ${work})`);
  process.exit(1);
};

step('building');
execFileSync('pnpm', ['exec', 'turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: root, stdio: 'inherit' });
step(`packing ${PUBLISHED.length} packages`);
for (const dir of PUBLISHED) execFileSync('pnpm', ['pack', '--pack-destination', tarballs], { cwd: join(root, dir), stdio: ['ignore', 'ignore', 'inherit'] });
const files = readdirSync(tarballs).filter((f) => f.endsWith('.tgz')).map((f) => join(tarballs, f));
for (const file of files) {
  const manifest = JSON.parse(execFileSync('tar', ['-xzOf', file, 'package/package.json'], { encoding: 'utf8' }));
  const text = JSON.stringify({ ...manifest, devDependencies: undefined });
  if (/workspace:|catalog:|@deepen\/source/.test(text)) fail(`${file} still names a workspace version, a catalog or the source condition`);
}

step(`npm install of the tarballs and @tensorflow/tfjs@${tfjsVersion} in ${app}`);
writeFileSync(join(app, 'package.json'), `${JSON.stringify({ name: 'deepen-user', private: true, type: 'module' }, null, 2)}\n`);
const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files, `@tensorflow/tfjs@${tfjsVersion}`], { cwd: app, stdio: 'inherit' });
if (install.status !== 0) fail(`npm install exited with ${install.status}`);

// One copy of each TensorFlow.js package: every consumer must share the engine registry.
/** @param {string} name */
const copies = (name) =>
  execFileSync('find', ['.', '-path', `*/node_modules/${name}/package.json`], { cwd: app, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
for (const name of ['@tensorflow/tfjs', '@tensorflow/tfjs-core']) {
  const found = copies(name);
  step(`${name}: ${found.length} cop${found.length === 1 ? 'y' : 'ies'}`);
  if (found.length !== 1) fail(`expected one copy of ${name}, found ${found.join(', ')}`);
}

step('npx pretrain train --steps 5');
const env = { ...process.env, DEEPEN_CACHE: join(work, 'cache') };
const run = spawnSync('npx', ['pretrain', 'train', '--steps', '5', '--preset', 'tiny', '--out', 'runs/first', '--eval-tokens', '1024'], { cwd: app, env, encoding: 'utf8' });
process.stdout.write(run.stdout);
process.stderr.write(run.stderr);
if (run.status !== 0) fail(`npx pretrain train exited with ${run.status}`);
if (!/final validation perplexity \d/.test(run.stdout)) fail('npx pretrain train printed no final perplexity');
if (/already registered/.test(run.stdout + run.stderr)) fail('TensorFlow.js warned about kernels registered twice');
rmSync(work, { recursive: true, force: true });
step('passed');
