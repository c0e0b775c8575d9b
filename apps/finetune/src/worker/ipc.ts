import { readFileSync } from 'node:fs';

/** An error's kind: its system code (ENOENT) or class (RangeError). */
function errorKind(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code)) return code;
  return error instanceof Error ? error.name : typeof error;
}

/** A token that starts with '/' and holds another: an absolute path with at least two parts. */
const ABSOLUTE_PATH = /(^|[\s'"`([=:,])\/[^\s/'"`]*\//;

/**
 * What a tenant is told about an error nobody expected. Its message may name files on the
 * server: the places the worker was given are named for what they are (`places` maps each
 * path to a name such as 'the base model'), and a message that still holds an absolute path
 * gives only the error's kind (ENOENT, RangeError). The whole message belongs in the service's log.
 */
export function describeError(error: unknown, places: Record<string, string | null>): string {
  let message = error instanceof Error ? error.message : String(error);
  const known = Object.entries(places).filter((place): place is [string, string] => place[1] !== null && place[0] !== '');
  // The longest first, so that a folder inside another is named for itself; a file inside one
  // reads as "the base model's config.json".
  for (const [path, name] of known.sort((a, b) => b[0].length - a[0].length)) message = message.split(`${path}/`).join(`${name}'s `).split(path).join(name);
  return ABSOLUTE_PATH.test(message) ? `an unexpected error (${errorKind(error)})` : `an unexpected error: ${message}`;
}

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
