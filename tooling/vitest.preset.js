// @ts-check
import { defineConfig } from 'vitest/config';

const SOURCE_CONDITIONS = ['@deepen/source', 'module', 'node', 'import', 'default'];

/**
 * Shared vitest settings. Tests live next to the code (`src/**\/*.test.ts`) or in `test/`.
 * Besides the console output, every run writes `.vitest-report.json`, which
 * `tooling/scripts/test.mjs` sums into the workspace's closing "N passed, N failed" line.
 * Numerical tests are CPU-bound and share two cores, so files run in forked workers
 * with a generous timeout instead of racing each other.
 * @param {import('vitest/config').ViteUserConfig['test']} [overrides]
 */
export function deepenVitest(overrides = {}) {
  return defineConfig({
    // Workspace packages resolve to their TypeScript sources (the "@deepen/source" export
    // condition), so a package's tests always run against the current code of the packages
    // it uses, never against whatever dist/ was last built.
    resolve: { conditions: SOURCE_CONDITIONS },
    ssr: { resolve: { conditions: SOURCE_CONDITIONS } },
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      environment: 'node',
      pool: 'forks',
      testTimeout: 60_000,
      hookTimeout: 60_000,
      reporters: ['default', 'json'],
      outputFile: { json: '.vitest-report.json' },
      ...overrides,
    },
  });
}
