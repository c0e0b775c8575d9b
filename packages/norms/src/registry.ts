import { BUILTIN_PARTS } from './builtins.js';
import { DEFAULT_PLAN, type BlockPlan, type InitSpec, type NormScheme, type ParamRole, type SchemeOptions, type SchemePart } from './scheme.js';

const parts = new Map<string, SchemePart>(BUILTIN_PARTS.map((p) => [p.name, p]));

/** The names a scheme can be composed of, in registration order. */
export function knownSchemeParts(): SchemePart[] {
  return [...parts.values()];
}

/**
 * Adds a scheme part from user code, e.g. a new wiring or init rule, without touching the
 * model. Names are lower-case words with dashes; replacing an existing one needs `replace`.
 */
export function registerSchemePart(part: SchemePart, options: { replace?: boolean } = {}): void {
  if (!/^[a-z][a-z0-9-]*$/.test(part.name)) {
    throw new Error(`scheme part name '${part.name}' must be lower-case letters, digits and dashes`);
  }
  if (parts.has(part.name) && !options.replace) {
    throw new Error(`scheme part '${part.name}' is already registered (pass { replace: true } to override it)`);
  }
  parts.set(part.name, part);
}

/** Removes a registered part (for tests and plugins that clean up after themselves). */
export function unregisterSchemePart(name: string): boolean {
  return parts.delete(name);
}

function unknownPart(name: string, full: string): Error {
  const known = [...parts.keys()].join(', ');
  return new Error(
    `unknown normalization scheme '${name}'${full !== name ? ` in '${full}'` : ''}; known: ${known} (combine with '+', e.g. lns+scaled)`,
  );
}

/**
 * Resolves a scheme name such as `lns`, `pre+scaled` or `mix` for a model of `numLayers`
 * blocks. Parts apply left to right; at most one part per category.
 */
export function resolveScheme(name: string, numLayers: number, options: SchemeOptions = {}): NormScheme {
  if (!Number.isInteger(numLayers) || numLayers < 1) throw new Error(`scheme '${name}': numLayers must be a positive integer, got ${numLayers}`);
  const names = name
    .toLowerCase()
    .split('+')
    .map((n) => n.trim());
  if (names.some((n) => n === '')) throw new Error(`normalization scheme '${name}' has an empty part`);
  const chosen = names.map((n) => {
    const part = parts.get(n);
    if (!part) throw unknownPart(n, name);
    return part;
  });
  const byCategory = new Map<string, string>();
  for (const part of chosen) {
    const other = byCategory.get(part.category);
    if (other) throw new Error(`normalization scheme '${name}' combines '${other}' and '${part.name}', which are both ${part.category} rules`);
    byCategory.set(part.category, part.name);
  }

  const plans: BlockPlan[] = [];
  for (let layer = 1; layer <= numLayers; layer++) {
    const ctx = { layer, numLayers, options };
    plans.push(Object.freeze(chosen.reduce((plan, part) => (part.block ? part.block(plan, ctx) : plan), { ...DEFAULT_PLAN })));
  }
  for (const part of chosen) {
    const problem = part.validate?.(plans);
    if (problem) throw new Error(`normalization scheme '${name}': ${problem}`);
  }

  return {
    name: names.join('+'),
    parts: chosen,
    options,
    block(layer: number): BlockPlan {
      const plan = plans[layer - 1];
      if (!plan) throw new Error(`scheme '${name}': layer ${layer} is outside 1..${numLayers}`);
      return plan;
    },
    init(role: ParamRole, layer: number | null, baseStd: number): InitSpec {
      const ctx = { layer, numLayers, options, baseStd };
      return chosen.reduce<InitSpec>((spec, part) => (part.init ? part.init(spec, role, ctx) : spec), { kind: 'normal', std: baseStd });
    },
    // Norm scales fold into norm weights and gates into the output projections; a scaled
    // residual or a norm after the residual has no Pre-LN equivalent.
    foldable: plans.every((p) => p.wiring === 'pre' && p.residualScale === 1),
  };
}
