import type { UserConfig, ViteUserConfig } from 'vitest/config';
export declare function deepenVitest(overrides?: ViteUserConfig['test']): UserConfig;
