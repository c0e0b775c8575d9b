import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeAnalysisReportJson, writeFileDurable, type AnalysisEntry, type AnalysisResult } from '@deepen/core';
import { heatmap, lineChart, type Series } from './charts.js';
import { svgToPng } from './png.js';

/** One analysed checkpoint in a report (the report.json schema lives in @deepen/core). */
export type ReportEntry = AnalysisEntry;

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const slug = (s: string) => s.replace(/[^\w.-]+/g, '-');

/**
 * Writes an analysis report folder: report.json with every number, report.html (self-contained,
 * inline SVG), and each chart as .svg and .png. Returns the chart files written.
 */
export function writeAnalysisReport(dir: string, entries: ReportEntry[], log: (line: string) => void = () => {}): string[] {
  mkdirSync(dir, { recursive: true });
  const perLayer = (f: (r: AnalysisResult, layer: number) => number | null): Series[] =>
    entries.map((e) => ({ name: e.name, points: Array.from({ length: e.result.layers }, (_, l) => [l + 1, f(e.result, l) ?? NaN] as [number, number]) }));
  const charts: Array<[string, string]> = [
    ['variance', lineChart('Residual-stream variance after each layer', 'layer', 'variance', perLayer((r, l) => r.depth.layers[l]!.outputVariance), { logY: true })],
    ['block-influence', lineChart('Block Influence (1 - cos(input, output))', 'layer', 'Block Influence', perLayer((r, l) => r.depth.layers[l]!.blockInfluence))],
    ['removal-perplexity', lineChart('Perplexity increase when the layer is removed', 'layer', 'perplexity increase', perLayer((r, l) => r.removal[l]?.perplexityIncrease ?? null), { logY: true })],
  ];
  if (entries.some((e) => e.result.removal.some((r) => r.clozeAccuracyDrop !== null))) {
    charts.push(['removal-cloze', lineChart('Cloze accuracy drop when the layer is removed', 'layer', 'accuracy drop', perLayer((r, l) => r.removal[l]?.clozeAccuracyDrop ?? null))]);
  }
  for (const e of entries) {
    charts.push([`angular-${slug(e.name)}`, heatmap(`Angular distance, ${e.name} (all tokens)`, 'first layer l', 'layers spanned n', e.result.depth.angularAllTokens, { min: 0, max: 0.5 })]);
  }
  const files: string[] = [];
  for (const [name, svg] of charts) {
    writeFileDurable(join(dir, `${name}.svg`), svg);
    files.push(`${name}.svg`);
    const png = svgToPng(svg);
    if ('png' in png) {
      writeFileDurable(join(dir, `${name}.png`), png.png);
      files.push(`${name}.png`);
    } else log(`${name}.png not written: ${png.error}`);
  }
  const rows = entries
    .map((e) => {
      const r = e.result;
      return `<tr><td>${escape(e.name)}</td><td>${escape(r.scheme)}</td><td>${r.layers}</td><td>${r.perplexity.perplexity.toFixed(2)}</td><td>${r.cloze ? (100 * r.cloze.accuracy).toFixed(1) + '%' : 'n/a'}</td><td>${r.multipleChoice ? (100 * r.multipleChoice.accuracy).toFixed(1) + '%' : 'n/a'}</td></tr>`;
    })
    .join('\n');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deepen analysis</title>
<style>body{font-family:Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px}figure{margin:1.5em 0}</style></head>
<body><h1>Depth analysis</h1>
<table><tr><th>model</th><th>scheme</th><th>layers</th><th>perplexity</th><th>cloze accuracy</th><th>multiple choice</th></tr>
${rows}</table>
${charts.map(([name, svg]) => `<figure id="${name}">${svg}</figure>`).join('\n')}
</body></html>
`;
  writeFileDurable(join(dir, 'report.html'), html);
  writeAnalysisReportJson(dir, entries);
  return files;
}
