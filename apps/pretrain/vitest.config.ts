import { deepenVitest } from '@deepen/tooling/vitest';

// The test files each drive the real CLI in child processes that use both cores; run side
// by side they halve each other's speed and push sequences of CLI runs past the timeout.
export default deepenVitest({ fileParallelism: false });
