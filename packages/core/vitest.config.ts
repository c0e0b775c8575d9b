import { deepenVitest } from '@deepen/tooling/vitest';

export default deepenVitest();
