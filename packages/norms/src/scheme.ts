/**
 * A normalization scheme is data: for each block it says where the norms sit, what constant
 * multiplies a norm's output, how the residual is scaled and gated, and how each weight is
 * initialised. The model asks the scheme; it never branches on a scheme's name.
 */

/** Where a block's norms sit relative to the residual connection. */
export type Wiring =
  /** h = a*x + g*A(s*N1(x)) (LLaMA). */
  | 'pre'
  /** h = N1(a*x + g*A(x)) (original Transformer, DeepNorm). */
  | 'post'
  /** h = a*x + g*N2(A(s*N1(x))) (four norms per block). */
  | 'sandwich';

/** A learnable multiplier on each sublayer's output before it joins the residual. */
export type Gate =
  | { kind: 'none' }
  /** A per-channel vector initialised to `init` (LayerScale). */
  | { kind: 'layerscale'; init: number }
  /** A scalar initialised to `init`, 0 for SkipInit. */
  | { kind: 'scalar'; init: number };

/** What one block looks like under the scheme. */
export interface BlockPlan {
  wiring: Wiring;
  /** Constant multiplying the output of each norm in front of a sublayer (LNS: 1/sqrt(l)). */
  normScale: number;
  /** Constant multiplying the residual stream where a sublayer joins it (DeepNorm's alpha). */
  residualScale: number;
  gate: Gate;
}

/** The weights of a LLaMA model, by role. */
export type ParamRole =
  | 'embed'
  | 'q_proj'
  | 'k_proj'
  | 'v_proj'
  | 'o_proj'
  | 'gate_proj'
  | 'up_proj'
  | 'down_proj'
  | 'lm_head';

/** How to draw one weight matrix. */
export type InitSpec =
  | { kind: 'normal'; std: number }
  /** Xavier/Glorot normal: std = gain * sqrt(2 / (fan_in + fan_out)). */
  | { kind: 'xavier-normal'; gain: number };

/** What a scheme's functions see. */
export interface SchemeContext {
  /** 1-based depth of the block (for a pruned model: its depth in the original model). */
  layer: number;
  /** Number of blocks the scheme is defined over. */
  numLayers: number;
  options: SchemeOptions;
}

/** Knobs some schemes read; every one has a default. */
export interface SchemeOptions {
  /** Mix-LN: how many leading blocks use Post-LN. Default round(0.25 * numLayers). */
  mixPostLayers?: number;
  /** LayerScale: initial value of the per-channel gate. Default 0.1. */
  layerScaleInit?: number;
}

/** What an init rule sees: `layer` is null for weights outside the blocks (embedding, head). */
export interface InitContext extends Omit<SchemeContext, 'layer'> {
  layer: number | null;
  /** The model's initializer_range (0.02 for LLaMA). */
  baseStd: number;
}

/**
 * One named ingredient of a scheme. A scheme name like `lns+scaled` composes parts left to
 * right: each may rewrite the block plan and the init of each weight.
 */
export interface SchemePart {
  name: string;
  description: string;
  /**
   * Parts of one category exclude each other (two wirings, two init rules). Categories:
   * 'wiring', 'scaling', 'gate', 'init'.
   */
  category: 'wiring' | 'scaling' | 'gate' | 'init';
  block?(plan: BlockPlan, ctx: SchemeContext): BlockPlan;
  /** `layer` is null for weights outside the blocks (embedding, head). */
  init?(spec: InitSpec, role: ParamRole, ctx: InitContext): InitSpec;
  /** Checks that need the whole composition (e.g. LNS needs norms in front of the sublayers). */
  validate?(plans: BlockPlan[]): string | null;
}

/** A resolved scheme for a model with a given number of layers. */
export interface NormScheme {
  /** The canonical name, parts joined by '+'. */
  name: string;
  parts: SchemePart[];
  options: SchemeOptions;
  /** Plan for the block at depth `layer` (1-based). */
  block(layer: number): BlockPlan;
  /** Init of a weight; `layer` is the 1-based block depth or null outside the blocks. */
  init(role: ParamRole, layer: number | null, baseStd: number): InitSpec;
  /**
   * Whether a trained model under this scheme is exactly a plain Pre-LN LLaMA once constants
   * are folded into weights (so stock runtimes reproduce it).
   */
  foldable: boolean;
}

export const DEFAULT_PLAN: BlockPlan = Object.freeze({
  wiring: 'pre',
  normScale: 1,
  residualScale: 1,
  gate: Object.freeze({ kind: 'none' }) as Gate,
});
