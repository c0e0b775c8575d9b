import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileDurable } from '@deepen/core';
import { lineChart, svgToPng } from '@deepen/evaluator';
import { helpText, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import { checkNorm, schemeNames } from '../setup.js';
import { RUN_FLAGS, runTraining, type RunResult } from './train.js';

const FLAGS: Record<string, FlagSpec> = {
  norms: { type: 'list', value: 'LIST', default: 'pre,lns', description: 'schemes to compare, comma-separated' },
  ...Object.fromEntries(Object.entries(RUN_FLAGS).filter(([name]) => name !== 'norm')),
  out: { type: 'string', value: 'DIR', description: 'report folder (default runs/compare-<time>)' },
  quiet: { type: 'bool', description: 'print only the result table' },
};

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export async function compareCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('compare', argv, FLAGS);
  if (values.help) {
    process.stdout.write(helpText('pretrain compare --norms pre,lns,mix [options]', `Train the same model, data order and seed under several normalization schemes and report the difference. Schemes: ${schemeNames()}.`, FLAGS));
    return 0;
  }
  const norms = values.norms as string[];
  if (new Set(norms).size !== norms.length) throw new UsageError('--norms lists a scheme twice');
  for (const norm of norms) checkNorm(norm, 1_000); // names only; the layer count is checked per run
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  const outDir = resolve(values.out === undefined ? join('runs', `compare-${stamp}`) : String(values.out));
  if (existsSync(outDir) && readdirSync(outDir).length > 0) throw new UsageError(`--out ${outDir} already holds files; choose another --out`);
  mkdirSync(outDir, { recursive: true });
  const log = values.quiet ? () => {} : (line: string) => process.stdout.write(`${line}\n`);

  const results: Array<{ norm: string; result: RunResult }> = [];
  for (const norm of norms) {
    log(`\n== ${norm} ==`);
    const result = await runTraining({ ...values, norm }, { mode: values.quiet ? 'quiet' : 'human', log, outDir: join(outDir, norm.replace(/\+/g, '-')) });
    results.push({ norm, result });
  }

  const rows = results.map(({ norm, result }) => ({
    norm,
    validationLoss: result.finalEval?.loss ?? null,
    validationPerplexity: result.finalEval?.perplexity ?? null,
    finalTrainLoss: result.steps.at(-1)?.loss ?? null,
    parameters: result.parameters,
  }));
  const report = {
    settings: { ...values, norms },
    results: rows,
    runs: results.map(({ norm, result }) => ({
      norm,
      dir: result.outDir,
      steps: result.steps.map((s) => ({ step: s.step, loss: s.loss, lr: s.lr, gradNorm: s.gradNorm })),
      evals: result.evals,
      diagnostics: result.diagnostics,
    })),
  };
  const lossChart = lineChart('Training loss', 'step', 'loss', results.map(({ norm, result }) => ({ name: norm, points: result.steps.map((s) => [s.step, s.loss] as [number, number]) })));
  const evalChart = lineChart('Validation loss', 'step', 'loss', results.map(({ norm, result }) => ({ name: norm, points: result.evals.map((e) => [e.step, e.loss] as [number, number]) })));
  const varianceChart = lineChart(
    'Residual-stream variance after each layer (last diagnostics)',
    'layer',
    'variance',
    results.map(({ norm, result }) => ({ name: norm, points: (result.diagnostics.at(-1)?.layers ?? []).map((l) => [l.layer + 1, l.outputVariance] as [number, number]) })),
    { logY: true },
  );
  const table = rows
    .map((r) => `<tr><td>${escape(r.norm)}</td><td>${r.validationPerplexity?.toFixed(2) ?? 'n/a'}</td><td>${r.validationLoss?.toFixed(4) ?? 'n/a'}</td><td>${r.finalTrainLoss?.toFixed(4) ?? 'n/a'}</td></tr>`)
    .join('\n');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deepen: ${escape(norms.join(' vs '))}</title>
<style>body{font-family:Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head>
<body><h1>Normalization schemes compared</h1>
<p>Same model (${escape(String(values.config ?? values.preset))}), data order and seed (${escape(String(values.seed))}); ${escape(String(values.steps))} steps.</p>
<table><tr><th>scheme</th><th>validation perplexity</th><th>validation loss</th><th>final training loss</th></tr>
${table}</table>
${lossChart}
${evalChart}
${varianceChart}
</body></html>
`;
  for (const [name, svg] of [['loss', lossChart], ['eval', evalChart], ['variance', varianceChart]] as const) {
    writeFileDurable(join(outDir, `${name}.svg`), svg);
    const rendered = svgToPng(svg);
    if ('png' in rendered) writeFileDurable(join(outDir, `${name}.png`), rendered.png);
    else log(`${name}.png not written: ${rendered.error}`);
  }
  writeFileDurable(join(outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileDurable(join(outDir, 'report.html'), html);

  const width = Math.max(6, ...norms.map((n) => n.length));
  process.stdout.write(`\n${'scheme'.padEnd(width)}  val ppl   val loss\n`);
  for (const r of rows) process.stdout.write(`${r.norm.padEnd(width)}  ${(r.validationPerplexity?.toFixed(2) ?? 'n/a').padStart(7)}  ${(r.validationLoss?.toFixed(4) ?? 'n/a').padStart(9)}\n`);
  process.stdout.write(`report: ${join(outDir, 'report.html')}\n`);
  return 0;
}
