import { deepenTsup } from '@deepen/tooling/tsup';

export default deepenTsup();
