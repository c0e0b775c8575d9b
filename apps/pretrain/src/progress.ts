import type { Trainer } from '@deepen/trainer';

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export type OutputMode = 'human' | 'quiet' | 'json';

/**
 * Shows training progress: one live line on a terminal (rewritten in place), a line every
 * few percent otherwise; JSON events on stdout with --json; nothing with --quiet.
 */
export function attachProgress(trainer: Trainer, mode: OutputMode, out: NodeJS.WriteStream = process.stdout): void {
  if (mode === 'quiet') return;
  if (mode === 'json') {
    for (const event of ['step', 'eval', 'diagnostics', 'checkpoint', 'done', 'error'] as const) {
      trainer.on(event, (payload) => out.write(`${JSON.stringify({ event, ...payload })}\n`));
    }
    return;
  }
  const live = out.isTTY === true;
  let lastEval: number | null = trainer.history.evals.at(-1)?.loss ?? null;
  let rate: number | null = null;
  trainer.on('eval', (e) => {
    lastEval = e.loss;
    if (!live) out.write(`eval at step ${e.step}: loss ${e.loss.toFixed(4)}, perplexity ${e.perplexity.toFixed(2)} on ${e.tokens.toLocaleString('en-US')} tokens\n`);
  });
  trainer.on('checkpoint', (e) => {
    if (!live) out.write(`checkpoint: ${e.dir}\n`);
  });
  trainer.on('step', (e) => {
    rate = rate === null ? e.tokensPerSecond : 0.8 * rate + 0.2 * e.tokensPerSecond;
    const remaining = ((e.totalSteps - e.step) * e.tokens) / rate;
    const line =
      `step ${e.step}/${e.totalSteps} | loss ${e.loss.toFixed(4)} | eval ${lastEval === null ? '-' : lastEval.toFixed(4)} | lr ${e.lr.toExponential(2)}` +
      ` | ${Math.round(rate).toLocaleString('en-US')} tok/s | ${(e.flopsPerSecond / 1e9).toFixed(2)} GFLOP/s | ETA ${duration(remaining)}`;
    const every = Math.max(1, Math.round(e.totalSteps / 20));
    if (live) out.write(`\r\x1b[2K${line}`);
    else if (e.step % every === 0 || e.step === e.totalSteps || e.step === 1) out.write(`${line}\n`);
  });
  trainer.on('done', () => {
    if (live) out.write('\n');
  });
}
