export { rmsNorm, layerNorm } from './layers.js';
export { resolveScheme, registerSchemePart, unregisterSchemePart, knownSchemeParts } from './registry.js';
export { BUILTIN_PARTS, deepNormAlpha, deepNormBeta, lnsFactor, defaultMixPostLayers } from './builtins.js';
export { DEFAULT_PLAN } from './scheme.js';
export type {
  BlockPlan,
  Gate,
  InitContext,
  InitSpec,
  NormScheme,
  ParamRole,
  SchemeContext,
  SchemeOptions,
  SchemePart,
  Wiring,
} from './scheme.js';
