import { getBackend, getKernelsForBackend, registerKernel, unregisterKernel } from '@tensorflow/tfjs';
import type { KernelConfig } from '@tensorflow/tfjs';

/** Time spent in one kernel during a profiled piece of work. */
export interface KernelTime {
  kernel: string;
  calls: number;
  ms: number;
  /** Share of the time spent in all kernels. */
  share: number;
}

export interface KernelProfile<T> {
  result: T;
  /** Wall-clock milliseconds of the whole work, kernels and everything between them. */
  totalMs: number;
  /** Milliseconds inside kernels. */
  kernelMs: number;
  /** Slowest first. */
  kernels: KernelTime[];
}

/**
 * Runs `work` with every kernel of the active engine timed, and returns where the time went.
 * Works for engines that compute synchronously (native, wasm, cpu). Kernels are wrapped for
 * the duration of the call only; a kernel that calls another one directly counts once.
 */
export async function profileKernels<T>(work: () => T | Promise<T>): Promise<KernelProfile<T>> {
  const backendName = getBackend();
  const originals: KernelConfig[] = getKernelsForBackend(backendName);
  const times = new Map<string, { calls: number; ms: number }>();
  let depth = 0;
  for (const kernel of originals) {
    const entry = { calls: 0, ms: 0 };
    times.set(kernel.kernelName, entry);
    unregisterKernel(kernel.kernelName, backendName);
    registerKernel({
      ...kernel,
      kernelFunc: (args) => {
        // Only the outermost kernel counts, so time is never attributed twice.
        if (depth > 0) return kernel.kernelFunc(args);
        depth += 1;
        const started = performance.now();
        try {
          return kernel.kernelFunc(args);
        } finally {
          entry.ms += performance.now() - started;
          entry.calls += 1;
          depth -= 1;
        }
      },
    });
  }
  const started = performance.now();
  let result: T;
  try {
    result = await work();
  } finally {
    for (const kernel of originals) {
      unregisterKernel(kernel.kernelName, backendName);
      registerKernel(kernel);
    }
  }
  const totalMs = performance.now() - started;
  const kernelMs = [...times.values()].reduce((a, t) => a + t.ms, 0);
  const kernels = [...times]
    .filter(([, t]) => t.calls > 0)
    .map(([kernel, t]) => ({ kernel, calls: t.calls, ms: t.ms, share: kernelMs > 0 ? t.ms / kernelMs : 0 }))
    .sort((a, b) => b.ms - a.ms);
  return { result, totalMs, kernelMs, kernels };
}

/** The profile as an aligned table, the `top` slowest kernels and the rest summed. */
export function formatKernelProfile(profile: KernelProfile<unknown>, top = 15): string {
  const rows = profile.kernels.slice(0, top).map((k) => [k.kernel, String(k.calls), k.ms.toFixed(1), `${(k.share * 100).toFixed(1)}%`]);
  const rest = profile.kernels.slice(top);
  if (rest.length > 0) {
    const ms = rest.reduce((a, k) => a + k.ms, 0);
    rows.push([`${rest.length} others`, String(rest.reduce((a, k) => a + k.calls, 0)), ms.toFixed(1), `${((ms / profile.kernelMs) * 100).toFixed(1)}%`]);
  }
  rows.push(['outside kernels', '', (profile.totalMs - profile.kernelMs).toFixed(1), '']);
  const header = ['kernel', 'calls', 'ms', 'share'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
