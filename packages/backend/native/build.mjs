#!/usr/bin/env node
// Builds deepen's native CPU engine (native/src, linked against OpenBLAS) with node-gyp.
//
// Runs as this package's install script and again from `pnpm build` (skipped when the sources
// are unchanged). A machine without a C++ compiler or OpenBLAS must still install deepen: then
// this prints why, records the reason in native/build/status.json for the engine report, and
// exits 0, and deepen runs on the next engine (wasm). With --strict (the package's build
// script) a compile error in deepen's own sources fails instead, so a developer sees it.
//
// DEEPEN_NATIVE=0 skips the build; DEEPEN_NATIVE_FORCE=1 rebuilds even when up to date.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const strict = process.argv.includes('--strict');
const statusPath = join(here, 'build', 'status.json');
const binaryPath = join(here, 'build', 'Release', 'deepen_native.node');
const log = (line) => console.log(`deepen native engine: ${line}`);

function sourceHash() {
  const hash = createHash('sha256');
  const files = ['binding.gyp', ...readdirSync(join(here, 'src')).sort().map((f) => join('src', f))];
  for (const file of files) hash.update(file).update(readFileSync(join(here, file)));
  return hash.digest('hex').slice(0, 16);
}

function readStatus() {
  try {
    return JSON.parse(readFileSync(statusPath, 'utf8'));
  } catch {
    return null;
  }
}

function writeStatus(status) {
  mkdirSync(dirname(statusPath), { recursive: true });
  const tmp = `${statusPath}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ ...status, node: process.versions.node, builtAt: new Date().toISOString() }, null, 2)}\n`);
  renameSync(tmp, statusPath);
}

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, command)));
}

/** How to run node-gyp: the copy the package manager points at, one on PATH, or npm's own. */
function nodeGypCommand() {
  const fromManager = process.env.npm_config_node_gyp;
  if (fromManager && existsSync(fromManager)) return [process.execPath, [fromManager]];
  if (onPath('node-gyp')) return ['node-gyp', []];
  const npmRoot = spawnSync('npm', ['root', '--global'], { encoding: 'utf8' }).stdout?.trim();
  const bundled = npmRoot ? join(npmRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js') : '';
  if (bundled && existsSync(bundled)) return [process.execPath, [bundled]];
  return null;
}

/** The first missing prerequisite, in words a user can act on; null when all are there. */
function missingPrerequisite() {
  if (process.platform !== 'linux') return `the native engine is built and tested on Linux only (this is ${process.platform})`;
  if (!onPath('c++') && !onPath('g++')) return 'no C++ compiler (Debian: apt-get install g++ make python3)';
  if (!onPath('make')) return 'make is missing (Debian: apt-get install make)';
  if (!onPath('python3')) return 'python3 is missing, node-gyp needs it (Debian: apt-get install python3)';
  const cblas = ['/usr/include/cblas.h', '/usr/include/x86_64-linux-gnu/cblas.h', '/usr/include/aarch64-linux-gnu/cblas.h', '/usr/include/openblas/cblas.h'];
  if (!cblas.some((p) => existsSync(p))) return 'OpenBLAS development files not found (Debian: apt-get install libopenblas-dev)';
  try {
    createRequire(import.meta.url)('node-addon-api');
  } catch {
    return 'the node-addon-api package is not installed';
  }
  if (!nodeGypCommand()) return 'node-gyp not found (it ships with npm and pnpm)';
  return null;
}

/** The lines of a failed build worth showing: compiler errors first. */
function summarise(output) {
  const lines = output.split('\n').map((l) => l.trimEnd()).filter(Boolean);
  const errors = lines.filter((l) => /error|cannot find|No such file/i.test(l) && !/^gyp info/.test(l));
  return (errors.length > 0 ? errors : lines).slice(0, 12).join('\n');
}

function main() {
  if (process.env.DEEPEN_NATIVE === '0') {
    writeStatus({ ok: false, expected: true, reason: 'build skipped because DEEPEN_NATIVE=0' });
    log('skipped (DEEPEN_NATIVE=0)');
    return 0;
  }
  const hash = sourceHash();
  const previous = readStatus();
  if (process.env.DEEPEN_NATIVE_FORCE !== '1' && previous?.ok && previous.sourceHash === hash && previous.node === process.versions.node && existsSync(binaryPath)) {
    return 0;
  }
  const missing = missingPrerequisite();
  if (missing) {
    // Expected on machines without the toolchain: deepen runs without the native engine there.
    writeStatus({ ok: false, expected: true, reason: missing, sourceHash: hash });
    log(`not built: ${missing}; deepen will use the next engine (wasm)`);
    return 0;
  }
  const [command, prefix] = nodeGypCommand();
  log('building with node-gyp (C++ kernels, OpenBLAS)...');
  const started = Date.now();
  const args = [...prefix, 'rebuild', '--directory', here, `--jobs=${Math.max(1, Math.min(4, Number(process.env.DEEPEN_NATIVE_JOBS) || 2))}`];
  // node-gyp downloads Node's headers unless told where they are; a system Node (Debian's
  // nodejs, say) has them next to it, and machines without internet can only use those.
  const prefixDir = dirname(dirname(process.execPath));
  if (!process.env.npm_config_nodedir && existsSync(join(prefixDir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefixDir}`);
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    env: process.env,
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${result.stdout ?? ''}\n${result.stderr ?? ''}`;
  if (result.status !== 0 || !existsSync(binaryPath)) {
    const detail = result.error ? String(result.error.message) : summarise(output);
    // A half-built binary must never be loaded: remove it with the failed build.
    rmSync(binaryPath, { force: true });
    // Not expected: the toolchain is there, so this is a bug (deepen's or the toolchain's).
    writeStatus({ ok: false, expected: false, reason: `node-gyp build failed: ${detail.split('\n')[0]}`, detail, sourceHash: hash });
    log(`build failed; deepen will use the next engine (wasm). Details:\n${detail}`);
    return strict ? 1 : 0;
  }
  writeStatus({ ok: true, sourceHash: hash });
  log(`built in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return 0;
}

process.exitCode = main();
