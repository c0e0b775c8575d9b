export { default } from './eslint.preset.js';
