import type { EngineName, EngineRequest } from './engines.js';
import type { PreparedKernels } from './kernels/index.js';

export interface RejectedEngine {
  engine: EngineName;
  packageName: string;
  reason: string;
}

/** Which engine runs, on what, and why the engines preferred over it do not. */
export interface BackendReport {
  engine: EngineName;
  packageName: string;
  /** The name TensorFlow.js knows the backend by. */
  tfBackend: string;
  /** Version of the engine's package. */
  version: string;
  tfjsVersion: string;
  device: string;
  threads: number;
  simd: boolean | null;
  notes: string[];
  /** How to make the engine faster on this machine (empty when nothing is known). */
  hints: string[];
  requested: EngineRequest;
  /** 'default', the option's name (e.g. '--backend') or 'DEEPEN_BACKEND=<value>'. */
  requestedBy: string;
  /** Engines tried before the chosen one, in preference order, with the reason each failed. */
  rejected: RejectedEngine[];
  kernels: PreparedKernels;
}

/** The report as a few aligned lines for a terminal. */
export function formatBackendReport(report: BackendReport): string {
  const simd = report.simd === null ? 'n/a' : report.simd ? 'yes' : 'no';
  const lines = [
    `engine     ${report.engine} (${report.packageName} ${report.version}, tfjs-core ${report.tfjsVersion})`,
    `device     ${report.device}`,
    `threads    ${report.threads}${report.notes.length > 0 ? ` (${report.notes.join('; ')})` : ''}`,
    `simd       ${simd}`,
    `chosen by  ${report.requestedBy === 'default' ? 'automatic selection' : report.requestedBy}`,
    ...report.hints.map((h) => `hint       ${h}`),
  ];
  if (report.kernels.replaced.length > 0) lines.push(`kernels    deepen's own: ${report.kernels.replaced.join(', ')}`);
  if (report.kernels.bridged.length > 0) {
    lines.push(`           run through the cpu engine: ${report.kernels.bridged.join(', ')}`);
  }
  if (report.rejected.length > 0) {
    lines.push('rejected');
    for (const r of report.rejected) lines.push(`  ${r.engine.padEnd(10)}${r.reason}`);
  }
  return lines.join('\n');
}
