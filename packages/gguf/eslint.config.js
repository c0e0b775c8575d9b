export { default } from '@deepen/tooling/eslint';
