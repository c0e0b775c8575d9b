import type { InitSpec, SchemePart } from './scheme.js';

/** DeepNet's constants for a decoder-only stack of L blocks (Wang et al. 2022). */
export function deepNormAlpha(numLayers: number): number {
  return (2 * numLayers) ** 0.25;
}
export function deepNormBeta(numLayers: number): number {
  return (8 * numLayers) ** -0.25;
}

/** LayerNorm Scaling's factor for the block at 1-based depth l. */
export function lnsFactor(layer: number): number {
  return 1 / Math.sqrt(layer);
}

/** Default Mix-LN split: the first 25% of the blocks (rounded) use Post-LN. */
export function defaultMixPostLayers(numLayers: number): number {
  return Math.round(0.25 * numLayers);
}

const OUTPUT_PROJECTIONS = new Set(['o_proj', 'down_proj']);

export const BUILTIN_PARTS: SchemePart[] = [
  {
    name: 'pre',
    category: 'wiring',
    description: 'Pre-LN (LLaMA): h = x + F(N(x)); a final norm before the head',
    block: (plan) => ({ ...plan, wiring: 'pre' }),
  },
  {
    name: 'post',
    category: 'wiring',
    description: 'Post-LN (original Transformer): h = N(x + F(x))',
    block: (plan) => ({ ...plan, wiring: 'post' }),
  },
  {
    name: 'mix',
    category: 'wiring',
    description: 'Mix-LN: Post-LN for the first k blocks (default 25% of the layers), Pre-LN after',
    block: (plan, { layer, numLayers, options }) => {
      const k = options.mixPostLayers ?? defaultMixPostLayers(numLayers);
      if (!Number.isInteger(k) || k < 0 || k > numLayers) {
        throw new Error(`mix: mixPostLayers must be an integer in [0, ${numLayers}], got ${k}`);
      }
      return { ...plan, wiring: layer <= k ? 'post' : 'pre' };
    },
  },
  {
    name: 'sandwich',
    category: 'wiring',
    description: 'Sandwich-LN: h = x + N2(F(N1(x))), four norms per block',
    block: (plan) => ({ ...plan, wiring: 'sandwich' }),
  },
  {
    name: 'deepnorm',
    category: 'wiring',
    description: 'DeepNorm: h = N(alpha*x + F(x)), alpha = (2L)^(1/4); v, o and MLP init Xavier-normal times beta = (8L)^(-1/4)',
    block: (plan, { numLayers }) => ({ ...plan, wiring: 'post', residualScale: deepNormAlpha(numLayers) }),
    init: (spec, role, { numLayers }): InitSpec => {
      if (role === 'q_proj' || role === 'k_proj') return { kind: 'xavier-normal', gain: 1 };
      if (role === 'embed' || role === 'lm_head') return spec;
      return { kind: 'xavier-normal', gain: deepNormBeta(numLayers) };
    },
  },
  {
    name: 'lns',
    category: 'scaling',
    description: "LayerNorm Scaling: each block norm's output times 1/sqrt(l), l the block's depth",
    block: (plan, { layer }) => ({ ...plan, normScale: plan.normScale * lnsFactor(layer) }),
    validate: (plans) =>
      plans.some((p) => p.wiring === 'post')
        ? "lns scales the norm in front of each sublayer, and Post-LN blocks have none; use it with 'pre' or 'sandwich'"
        : null,
  },
  {
    name: 'layerscale',
    category: 'gate',
    description: 'LayerScale: each sublayer output times a learnable per-channel vector (init layerScaleInit, default 0.1)',
    block: (plan, { options }) => ({ ...plan, gate: { kind: 'layerscale', init: options.layerScaleInit ?? 0.1 } }),
  },
  {
    name: 'skipinit',
    category: 'gate',
    description: 'SkipInit: each sublayer output times a learnable scalar initialised to 0',
    block: (plan) => ({ ...plan, gate: { kind: 'scalar', init: 0 } }),
  },
  {
    name: 'scaled',
    category: 'init',
    description: 'Scaled init (Megatron/OLMo): o_proj and down_proj drawn with std 0.02/sqrt(2L)',
    init: (spec, role, { numLayers, baseStd }) =>
      OUTPUT_PROJECTIONS.has(role) ? { kind: 'normal', std: baseStd / Math.sqrt(2 * numLayers) } : spec,
  },
  {
    name: 'depth-scaled',
    category: 'init',
    description: 'Depth-scaled init: o_proj and down_proj of block l drawn with std 0.02/sqrt(2l)',
    init: (spec, role, { layer, baseStd }) =>
      OUTPUT_PROJECTIONS.has(role) && layer !== null ? { kind: 'normal', std: baseStd / Math.sqrt(2 * layer) } : spec,
  },
];
