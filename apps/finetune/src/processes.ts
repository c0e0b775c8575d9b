import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/** Variables through which Hugging Face tools find a token: never passed on to a worker. */
const HUB_CREDENTIAL_VARIABLES = ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH'];

/**
 * Forks a worker entry with an IPC channel, its output appended to `logPath`. The job id in the
 * arguments lets a restarted service recognise a leftover worker. The service's own Hugging
 * Face credentials, if its environment has any, are not handed down: a worker publishes only
 * with the token of the job's tenant, which it gets over IPC.
 */
export function forkWorker(entry: string, args: string[], logPath: string): ChildProcess {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !HUB_CREDENTIAL_VARIABLES.includes(name)));
  const logFd = openSync(logPath, 'a');
  try {
    return fork(entry, args, { stdio: ['ignore', logFd, logFd, 'ipc'], execArgv: [], env });
  } finally {
    closeSync(logFd);
  }
}

export interface Supervision<M> {
  onMessage: (message: M) => Promise<void>;
  onExit: (code: number | null, signal: NodeJS.Signals | null) => Promise<void>;
  /** Names the worker in the service log. */
  label: string;
  log: (line: string) => void;
}

/**
 * Handles a worker's messages, then its exit, one after another in the order they came
 * ('close' comes after the last IPC message has been delivered; 'exit' may come before).
 * Returns a promise that resolves once the exit has been handled.
 */
export function supervise<M>(child: ChildProcess, s: Supervision<M>): Promise<void> {
  let queue = Promise.resolve();
  const enqueue = (work: () => Promise<void>) => {
    queue = queue.then(work).catch((error: unknown) => s.log(`${s.label}: ${(error as Error).stack ?? String(error)}`));
    return queue;
  };
  child.on('message', (message: M) => void enqueue(() => s.onMessage(message)));
  child.on('error', (error) => s.log(`${s.label}: process error: ${error.message}`));
  return new Promise((resolve) => child.on('close', (code, signal) => void enqueue(() => s.onExit(code, signal)).then(resolve)));
}
