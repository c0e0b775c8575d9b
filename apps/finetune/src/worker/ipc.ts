import { readFileSync } from 'node:fs';

/** Sends a message to the service; resolves once it is on its way (at once when the service is gone). */
export function send<M>(message: M): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(message, undefined, {}, () => resolve());
  });
}

/** The spec file the service forked this worker with, or null (after saying so) when something else started it. */
export function readSpec<T>(worker: string): T | null {
  const specPath = process.argv[2];
  if (!specPath || !process.send) {
    process.stderr.write(`finetune ${worker} worker: started by the service (child_process.fork with a spec path)\n`);
    return null;
  }
  return JSON.parse(readFileSync(specPath, 'utf8')) as T;
}

/** Runs a worker's main function, then lets go of the service and exits with its code. */
export async function runWorker(main: () => Promise<number>): Promise<never> {
  const code = await main();
  if (process.connected) process.disconnect();
  process.exit(code);
}
