import { deepenVitest } from '@deepen/tooling/vitest';

// The end-to-end tests run the built service (dist/): globalSetup builds it first.
export default deepenVitest({ globalSetup: ['./test/build.ts'] });
