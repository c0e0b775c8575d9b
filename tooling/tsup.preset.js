// @ts-check
import { defineConfig } from 'tsup';

/**
 * The one build recipe every package uses: ESM + .d.ts from src/index.ts (plus any extra
 * entries such as a CLI), targeting the Node version the workspace supports.
 * @param {import('tsup').Options} [overrides]
 */
export function deepenTsup(overrides = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    dts: true,
    sourcemap: true,
    clean: true,
    splitting: false,
    treeshake: true,
    ...overrides,
  });
}
