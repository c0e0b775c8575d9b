/** Minimal, dependency-free SVG line charts for run reports. */
export interface Series {
  name: string;
  points: Array<[number, number]>;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function ticks(min: number, max: number, count = 5): number[] {
  if (min === max) return [min];
  const step = 10 ** Math.floor(Math.log10((max - min) / count));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => (max - min) / s <= count) ?? step * 10;
  const out: number[] = [];
  for (let v = Math.ceil(min / nice) * nice; v <= max + 1e-12; v += nice) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4))));

/** A self-contained SVG line chart (optionally with a log-scale y axis). */
export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[], options: { logY?: boolean; width?: number; height?: number } = {}): string {
  const width = options.width ?? 640;
  const height = options.height ?? 360;
  const m = { left: 64, right: 150, top: 36, bottom: 48 };
  const transform = (y: number) => (options.logY ? Math.log10(Math.max(y, 1e-12)) : y);
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => transform(y));
  const [x0, x1] = xs.length ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  let [y0, y1] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const px = (x: number) => m.left + ((x - x0) / (x1 - x0 || 1)) * (width - m.left - m.right);
  const py = (y: number) => height - m.bottom - ((transform(y) - y0) / (y1 - y0)) * (height - m.top - m.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2 - m.right / 2 + m.left / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escape(title)}</text>`,
  ];
  // Steps and layer numbers are integers: no ticks between them.
  const integerX = xs.every(Number.isInteger);
  for (const t of ticks(x0, x1).filter((t) => !integerX || Number.isInteger(t))) {
    parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${m.top}" y2="${height - m.bottom}" stroke="#eee"/>`, `<text x="${px(t)}" y="${height - m.bottom + 16}" text-anchor="middle">${label(t)}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    const v = options.logY ? 10 ** t : t;
    parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${py(v)}" y2="${py(v)}" stroke="#eee"/>`, `<text x="${m.left - 6}" y="${py(v) + 4}" text-anchor="end">${label(v)}</text>`);
  }
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${width - m.left - m.right}" height="${height - m.top - m.bottom}" fill="none" stroke="#999"/>`,
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 10}" text-anchor="middle">${escape(xLabel)}</text>`,
    `<text transform="translate(16 ${(m.top + height - m.bottom) / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}${options.logY ? ' (log)' : ''}</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.filter(([, y]) => Number.isFinite(y)).map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    if (pts.length > 1) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(' ')}"/>`);
    else if (pts.length === 1) parts.push(`<circle cx="${pts[0]!.split(',')[0]}" cy="${pts[0]!.split(',')[1]}" r="3" fill="${color}"/>`);
    const ly = m.top + 10 + i * 18;
    parts.push(`<line x1="${width - m.right + 12}" x2="${width - m.right + 32}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="3"/>`, `<text x="${width - m.right + 38}" y="${ly + 4}">${escape(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/**
 * A heat map of `values[row][col]` (NaN cells left blank), e.g. the angular distance between
 * layer l and l + n: rows are l, columns n.
 */
export function heatmap(title: string, rowLabel: string, colLabel: string, values: number[][], options: { cell?: number; min?: number; max?: number } = {}): string {
  const rows = values.length;
  const cols = Math.max(1, ...values.map((r) => r.length));
  const cell = options.cell ?? Math.max(14, Math.min(40, Math.floor(420 / Math.max(rows, cols))));
  const m = { left: 64, right: 90, top: 40, bottom: 48 };
  const width = m.left + cols * cell + m.right;
  const height = m.top + rows * cell + m.bottom;
  const finite = values.flat().filter(Number.isFinite);
  const lo = options.min ?? (finite.length ? Math.min(...finite) : 0);
  const hi = options.max ?? (finite.length ? Math.max(...finite) : 1);
  // Viridis-like ramp from dark blue (low) to yellow (high).
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const color = (v: number) => {
    const t = hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0.5;
    const x = t * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(x));
    const f = x - i;
    const c = stops[i]!.map((a, k) => Math.round(a + (stops[i + 1]![k]! - a) * f));
    return `rgb(${c.join(',')})`;
  };
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escape(title)}</text>`,
  ];
  values.forEach((row, r) =>
    row.forEach((v, c) => {
      if (!Number.isFinite(v)) return;
      parts.push(`<rect x="${m.left + c * cell}" y="${m.top + r * cell}" width="${cell}" height="${cell}" fill="${color(v)}"><title>${escape(`${rowLabel} ${r}, ${colLabel} ${c + 1}: ${v.toFixed(4)}`)}</title></rect>`);
    }),
  );
  for (let r = 0; r < rows; r++) parts.push(`<text x="${m.left - 6}" y="${m.top + r * cell + cell / 2 + 4}" text-anchor="end">${r}</text>`);
  for (let c = 0; c < cols; c++) parts.push(`<text x="${m.left + c * cell + cell / 2}" y="${m.top + rows * cell + 14}" text-anchor="middle">${c + 1}</text>`);
  parts.push(
    `<text x="${m.left + (cols * cell) / 2}" y="${height - 10}" text-anchor="middle">${escape(colLabel)}</text>`,
    `<text transform="translate(16 ${m.top + (rows * cell) / 2}) rotate(-90)" text-anchor="middle">${escape(rowLabel)}</text>`,
  );
  const barX = m.left + cols * cell + 20;
  const barH = rows * cell;
  for (let i = 0; i < 20; i++) {
    parts.push(`<rect x="${barX}" y="${m.top + (barH * i) / 20}" width="14" height="${barH / 20 + 0.5}" fill="${color(hi - ((hi - lo) * i) / 19)}"/>`);
  }
  parts.push(`<text x="${barX + 18}" y="${m.top + 8}">${label(hi)}</text>`, `<text x="${barX + 18}" y="${m.top + barH}">${label(lo)}</text>`, '</svg>');
  return parts.join('\n');
}
