import { deepenTsup } from '@deepen/tooling/tsup';

// The service and the worker entries it forks: one process per training job and per upload to the Hub, one for completions.
export default deepenTsup({ entry: ['src/cli.ts', 'src/worker/train.ts', 'src/worker/publish.ts', 'src/worker/inference.ts'], dts: false });
