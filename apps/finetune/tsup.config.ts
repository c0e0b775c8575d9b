import { deepenTsup } from '@deepen/tooling/tsup';

// The service and the two worker entries it forks: one process per training job, one for completions.
export default deepenTsup({ entry: ['src/cli.ts', 'src/worker/train.ts', 'src/worker/inference.ts'], dts: false });
