import { deepenTsup } from '@deepen/tooling/tsup';

export default deepenTsup({ entry: ['src/cli.ts'], dts: false });
