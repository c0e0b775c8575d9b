import { deepenTsup } from '@deepen/tooling/tsup';

export default deepenTsup({
  entry: ['src/index.ts', 'src/cli.ts'],
  // The native engines are optional and loaded by name at run time, never bundled.
  external: ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
});
