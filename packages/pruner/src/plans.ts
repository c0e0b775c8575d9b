import type { DepthDiagnostics } from '@deepen/evaluator';

/** Which layers to remove, and why. */
export interface PrunePlan {
  /** 0-based layer indices, sorted. */
  remove: number[];
  /** How the plan was chosen, e.g. 'layers', 'block-influence', 'angular'. */
  method: string;
  /** The numbers behind the choice (for the pruned config and reports). */
  detail: Record<string, unknown>;
}

function checkCount(k: number, numLayers: number, what: string): void {
  if (!(Number.isInteger(k) && k >= 1 && k < numLayers)) throw new Error(`${what} must be an integer in [1, ${numLayers - 1}] for a ${numLayers}-layer model, got ${k}`);
}

/** Remove exactly these layers. */
export function removeLayersPlan(indices: number[], numLayers: number): PrunePlan {
  const remove = [...new Set(indices)].sort((a, b) => a - b);
  for (const i of remove) if (!(Number.isInteger(i) && i >= 0 && i < numLayers)) throw new Error(`layer ${i} is outside 0..${numLayers - 1}`);
  if (remove.length === 0) throw new Error('the plan removes no layer');
  if (remove.length >= numLayers) throw new Error(`the plan removes all ${numLayers} layers`);
  return { remove, method: 'layers', detail: {} };
}

/** Remove the k layers with the lowest Block Influence (ShortGPT). */
export function blockInfluencePlan(depth: DepthDiagnostics, k: number): PrunePlan {
  const L = depth.layers.length;
  checkCount(k, L, 'k');
  const ranked = [...depth.layers].sort((a, b) => a.blockInfluence - b.blockInfluence || a.layer - b.layer);
  return {
    remove: ranked.slice(0, k).map((l) => l.layer).sort((a, b) => a - b),
    method: 'block-influence',
    detail: { k, blockInfluence: depth.layers.map((l) => l.blockInfluence) },
  };
}

/**
 * Remove the block of n consecutive layers whose input and output are closest in angle
 * (Gromov et al.), never the last layer: l + n <= L - 1.
 */
export function angularPlan(depth: DepthDiagnostics, n: number, variant: 'all' | 'last' = 'last'): PrunePlan {
  const L = depth.layers.length;
  checkCount(n, L, 'n');
  const matrix = variant === 'all' ? depth.angularAllTokens : depth.angularLastToken;
  let best = -1;
  let bestDistance = Infinity;
  for (let l = 0; l + n <= L - 1; l++) {
    const d = matrix[l]![n - 1]!;
    if (d < bestDistance) {
      bestDistance = d;
      best = l;
    }
  }
  if (best < 0) throw new Error(`no block of ${n} layers can be removed while keeping the last layer of ${L}`);
  return { remove: Array.from({ length: n }, (_, i) => best + i), method: 'angular', detail: { n, variant, start: best, distance: bestDistance } };
}
