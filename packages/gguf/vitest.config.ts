import { deepenVitest } from '@deepen/tooling/vitest';

// The llama.cpp test files each run llama.cpp and deepen on both cores; side by side they
// would halve each other's speed.
export default deepenVitest({ fileParallelism: false });
