export interface BenchCase {
  name: string;
  /** One unit of work. */
  fn?: () => unknown | Promise<unknown>;
  /** Instead of fn: work timed elsewhere (another process, e.g. a PyTorch baseline), measured now, in this run. */
  external?: () => Promise<{ medianMs: number; runs: number }>;
  /** Overrides the comparison's warmup calls for this case. */
  warmup?: number;
  /** Overrides the comparison's minimum timed calls for this case. */
  minRuns?: number;
  /** Amount of work per call (e.g. tokens), for a throughput column. */
  work?: number;
  /** Runs once before this case, untimed (e.g. switching engines). */
  setup?: () => unknown | Promise<unknown>;
}
export interface BenchResult {
  name: string;
  medianMs: number;
  runs: number;
  /** Throughput relative to the baseline (time ratio when a case gives no work); > 1 is faster. */
  speedup: number;
}
export declare function compare(
  title: string,
  spec: { baseline: BenchCase; candidates: BenchCase[]; unit?: string; warmup?: number; minTimeMs?: number; minRuns?: number },
): Promise<BenchResult[]>;
export declare function printTable(title: string, header: string[], rows: string[][]): void;
