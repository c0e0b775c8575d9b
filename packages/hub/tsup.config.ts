import { deepenTsup } from '@deepen/tooling/tsup';

// src/testing.ts is the fake Hub server (@deepen/hub/testing) for tests of code that publishes or downloads.
export default deepenTsup({ entry: ['src/index.ts', 'src/testing.ts'] });
