// @ts-check
/**
 * A small benchmark harness. Every comparison measures its baseline in the same run as the
 * candidates and prints each result as a ratio against it, so numbers from different
 * machines or days are never compared with each other.
 *
 * Set DEEPEN_BENCH_QUICK=1 for a short smoke run (fewer repetitions, same code paths).
 */

/**
 * @typedef {object} BenchCase
 * @property {string} name
 * @property {() => unknown | Promise<unknown>} [fn]  one unit of work
 * @property {() => Promise<{ medianMs: number, runs: number }>} [external]  instead of fn: work
 *   timed elsewhere (another process, e.g. a PyTorch baseline), measured now, in this run
 * @property {number} [work]  amount of work per call (e.g. tokens), for a throughput column
 * @property {() => unknown | Promise<unknown>} [setup]  runs once before this case, untimed
 * @property {number} [warmup]  overrides the comparison's warmup calls for this case
 * @property {number} [minRuns]  overrides the comparison's minimum timed calls for this case
 */

/**
 * @typedef {object} BenchResult
 * @property {string} name
 * @property {number} medianMs
 * @property {number} runs
 * @property {number} speedup  throughput relative to the baseline (time ratio when no work is given); > 1 is faster
 */

const quick = process.env.DEEPEN_BENCH_QUICK === '1';

/** @param {BenchCase} c @param {number} warmup @param {number} minTimeMs @param {number} minRuns */
async function measure(c, warmup, minTimeMs, minRuns) {
  if (c.setup) await c.setup();
  if (c.external) return c.external();
  const fn = c.fn;
  if (!fn) throw new Error(`bench case '${c.name}' has neither fn nor external`);
  warmup = c.warmup ?? warmup;
  minRuns = c.minRuns ?? minRuns;
  for (let i = 0; i < warmup; i++) await fn();
  /** @type {number[]} */
  const times = [];
  const started = performance.now();
  while (times.length < minRuns || performance.now() - started < minTimeMs) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { medianMs: /** @type {number} */ (times[Math.floor(times.length / 2)]), runs: times.length };
}

/**
 * Runs the baseline and every candidate, prints a table and returns the numbers.
 * @param {string} title
 * @param {{ baseline: BenchCase, candidates: BenchCase[], unit?: string, warmup?: number, minTimeMs?: number, minRuns?: number }} spec
 * @returns {Promise<BenchResult[]>}
 */
export async function compare(title, spec) {
  const warmup = spec.warmup ?? (quick ? 1 : 2);
  const minTimeMs = spec.minTimeMs ?? (quick ? 100 : 1500);
  const minRuns = spec.minRuns ?? (quick ? 1 : 5);
  const all = [spec.baseline, ...spec.candidates];
  /** @type {Array<BenchResult & { work?: number }>} */
  const measured = [];
  for (const c of all) {
    const m = await measure(c, warmup, minTimeMs, minRuns);
    measured.push({ name: c.name, ...m, speedup: 0, work: c.work });
  }
  // With work given for every case, compare throughput (cases may do different amounts of work);
  // otherwise compare time per call.
  const rate = (/** @type {{ medianMs: number, work?: number }} */ r) => (r.work ?? 1) / r.medianMs;
  const byWork = measured.every((r) => r.work !== undefined);
  const base = /** @type {BenchResult & { work?: number }} */ (measured[0]);
  for (const r of measured) r.speedup = byWork ? rate(r) / rate(base) : base.medianMs / r.medianMs;
  const unit = spec.unit ?? 'items';
  const rows = measured.map((r, i) => [
    i === 0 ? `${r.name} (baseline)` : r.name,
    r.medianMs.toFixed(2),
    r.work === undefined ? '-' : `${formatRate((r.work * 1000) / r.medianMs)} ${unit}/s`,
    `${r.speedup.toFixed(2)}x`,
    String(r.runs),
  ]);
  printTable(title, ['case', 'median ms', 'throughput', 'vs baseline', 'runs'], rows);
  return measured.map(({ work: _work, ...r }) => r);
}

/** Three significant digits below 1000, thousands separators above. @param {number} x */
function formatRate(x) {
  return x >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toPrecision(3);
}

/** @param {string} title @param {string[]} header @param {string[][]} rows */
export function printTable(title, header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (/** @type {string[]} */ cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  console.log(`\n${title}${quick ? ' (quick run)' : ''}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}
