import { fork, type ChildProcess } from 'node:child_process';
import { ApiError, shouldRetry } from './errors.js';
import type { CompletionJob, CompletionOutcome } from './worker/protocol.js';

type Success = Extract<CompletionOutcome, { ok: true }>;

interface Pending {
  resolve: (outcome: CompletionOutcome) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The service's side of the completions process: started on first use, restarted after it
 * dies, one request at a time in arrival order, each with a deadline.
 */
export class InferenceClient {
  private child: ChildProcess | null = null;
  private ready: Promise<ChildProcess> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    private readonly o: { workerPath: string; engine: string; timeoutMs: number; log: (line: string) => void },
  ) {}

  private start(): Promise<ChildProcess> {
    this.ready ??= new Promise((resolve, reject) => {
      const child = fork(this.o.workerPath, [this.o.engine], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
      this.child = child;
      child.once('message', () => resolve(child)); // the first message says it is ready
      child.on('message', (outcome: CompletionOutcome & { ready?: true }) => {
        if (outcome.ready) return;
        const waiting = this.pending.get(outcome.id);
        if (!waiting) return;
        clearTimeout(waiting.timer);
        this.pending.delete(outcome.id);
        waiting.resolve(outcome);
      });
      child.on('exit', (code, signal) => {
        this.child = null;
        this.ready = null;
        // The next request starts a new completions process.
        const error = new ApiError(500, `The completions process ${signal ? `was killed by ${signal}` : `exited with code ${code}`}; try again.`, 'server_error', 'inference_unavailable', null, shouldRetry(true));
        reject(error);
        for (const [id, waiting] of this.pending) {
          clearTimeout(waiting.timer);
          this.pending.delete(id);
          waiting.reject(error);
        }
      });
      child.on('error', (error) => this.o.log(`completions process: ${error.message}`));
    });
    return this.ready;
  }

  /** Generates; errors the worker reports (a prompt too long, ...) become API errors. */
  async complete(job: Omit<CompletionJob, 'id'>): Promise<Success> {
    const child = await this.start();
    const id = this.nextId++;
    const outcome = await new Promise<CompletionOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        // Generation cannot be interrupted inside the process: replace the process.
        child.kill('SIGKILL');
        // The same request would take as long again (and load the model anew): an SDK's retries would only triple the wait.
        reject(new ApiError(504, `Generation took longer than ${this.o.timeoutMs / 1000}s.`, 'server_error', 'timeout', null, shouldRetry(false)));
      }, this.o.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      child.send({ ...job, id } satisfies CompletionJob);
    });
    if (!outcome.ok) {
      // A generation that failed fails the same way again.
      throw new ApiError(outcome.status, outcome.message, outcome.status >= 500 ? 'server_error' : 'invalid_request_error', outcome.code, outcome.param, outcome.status >= 500 ? shouldRetry(false) : {});
    }
    return outcome;
  }

  close(): void {
    this.child?.kill('SIGKILL');
  }
}
