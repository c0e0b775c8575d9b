/** Learning-rate schedules. Steps are 0-based: lrAt(0) is the rate of the first update. */
export type ScheduleKind = 'cosine' | 'linear' | 'constant' | 'wsd';

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  /** Total optimizer steps of the run. */
  totalSteps: number;
  /** Linear warmup from lr/warmup to lr over this many steps. */
  warmup: number;
  /** Final rate as a fraction of the peak (cosine, linear, wsd). Default 0.1, as in the paper. */
  minLrRatio?: number;
  /** wsd: fraction of the steps spent in the final decay. Default 0.2. */
  decayFraction?: number;
}

export function validateSchedule(o: ScheduleOptions): void {
  const problems: string[] = [];
  if (!(o.lr > 0)) problems.push(`lr must be positive, got ${o.lr}`);
  if (!(Number.isInteger(o.totalSteps) && o.totalSteps > 0)) problems.push(`totalSteps must be a positive integer, got ${o.totalSteps}`);
  if (!(Number.isInteger(o.warmup) && o.warmup >= 0 && o.warmup <= o.totalSteps)) problems.push(`warmup must be an integer in [0, steps], got ${o.warmup}`);
  const m = o.minLrRatio ?? 0.1;
  if (!(m >= 0 && m <= 1)) problems.push(`minLrRatio must be in [0, 1], got ${m}`);
  const d = o.decayFraction ?? 0.2;
  if (!(d > 0 && d <= 1)) problems.push(`decayFraction must be in (0, 1], got ${d}`);
  if (problems.length > 0) throw new Error(`invalid schedule: ${problems.join('; ')}`);
}

/** The learning rate for optimizer step `step` (0-based). */
export function lrAt(step: number, o: ScheduleOptions): number {
  const minLr = o.lr * (o.minLrRatio ?? 0.1);
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  const span = Math.max(1, o.totalSteps - o.warmup);
  const progress = Math.min(1, (step - o.warmup) / span);
  switch (o.kind) {
    case 'constant':
      return o.lr;
    case 'cosine':
      return minLr + (o.lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
    case 'linear':
      return o.lr + (minLr - o.lr) * progress;
    case 'wsd': {
      const decaySteps = Math.max(1, Math.round((o.decayFraction ?? 0.2) * o.totalSteps));
      const decayStart = o.totalSteps - decaySteps;
      if (step < decayStart) return o.lr;
      return o.lr + (minLr - o.lr) * Math.min(1, (step - decayStart) / decaySteps);
    }
  }
}
