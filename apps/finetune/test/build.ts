import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Builds dist/ once before the tests: they start the real service, which forks the built workers. */
export default function build(): void {
  execFileSync('pnpm', ['exec', 'tsup', '--silent'], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: 'inherit' });
}
