export { removeLayersPlan, blockInfluencePlan, angularPlan } from './plans.js';
export type { PrunePlan } from './plans.js';
export { applyPlan } from './apply.js';
export type { ApplyOptions } from './apply.js';
