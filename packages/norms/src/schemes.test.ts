import { afterEach, describe, expect, it } from 'vitest';
import { deepNormAlpha, deepNormBeta, lnsFactor } from './builtins.js';
import { knownSchemeParts, registerSchemePart, resolveScheme, unregisterSchemePart } from './registry.js';

afterEach(() => {
  unregisterSchemePart('half-residual');
});

describe('built-in schemes', () => {
  it('pre: plain LLaMA blocks', () => {
    const s = resolveScheme('pre', 4);
    for (let l = 1; l <= 4; l++) expect(s.block(l)).toEqual({ wiring: 'pre', normScale: 1, residualScale: 1, gate: { kind: 'none' } });
    expect(s.foldable).toBe(true);
    expect(s.init('o_proj', 2, 0.02)).toEqual({ kind: 'normal', std: 0.02 });
  });

  it('lns: 1/sqrt(l) per layer, Pre-LN wiring', () => {
    const s = resolveScheme('lns', 6);
    const factors = [1, 1 / Math.SQRT2, 1 / Math.sqrt(3), 0.5, 1 / Math.sqrt(5), 1 / Math.sqrt(6)];
    factors.forEach((f, i) => {
      expect(s.block(i + 1).normScale).toBeCloseTo(f, 12);
      expect(s.block(i + 1).wiring).toBe('pre');
    });
    expect(lnsFactor(4)).toBe(0.5);
    expect(s.foldable).toBe(true);
  });

  it('post and sandwich wirings', () => {
    expect(resolveScheme('post', 3).block(2).wiring).toBe('post');
    expect(resolveScheme('post', 3).foldable).toBe(false);
    expect(resolveScheme('sandwich', 3).block(3).wiring).toBe('sandwich');
    expect(resolveScheme('sandwich', 3).foldable).toBe(false);
  });

  it('mix: Post-LN for the first 25% of the layers (rounded), Pre-LN after', () => {
    const wirings = (L: number, options = {}) => Array.from({ length: L }, (_, i) => resolveScheme('mix', L, options).block(i + 1).wiring);
    expect(wirings(12).filter((w) => w === 'post')).toHaveLength(3);
    expect(wirings(24).filter((w) => w === 'post')).toHaveLength(6);
    expect(wirings(4)).toEqual(['post', 'pre', 'pre', 'pre']);
    expect(wirings(6)).toEqual(['post', 'post', 'pre', 'pre', 'pre', 'pre']); // 1.5 rounds to 2
    expect(wirings(4, { mixPostLayers: 3 })).toEqual(['post', 'post', 'post', 'pre']);
    expect(() => resolveScheme('mix', 4, { mixPostLayers: 5 })).toThrow(/mixPostLayers must be an integer in \[0, 4\], got 5/);
  });

  it('deepnorm: alpha = (2L)^(1/4), beta = (8L)^(-1/4)', () => {
    expect(deepNormAlpha(12)).toBeCloseTo(2.2133638, 6); // 24^(1/4)
    expect(deepNormBeta(12)).toBeCloseTo(0.3194716, 6); // 96^(-1/4): 3.1302^4 = 96.0
    expect(deepNormAlpha(24)).toBeCloseTo(2.6321480, 6); // 48^(1/4)
    const s = resolveScheme('deepnorm', 12);
    expect(s.block(5)).toMatchObject({ wiring: 'post', residualScale: deepNormAlpha(12) });
    expect(s.init('q_proj', 1, 0.02)).toEqual({ kind: 'xavier-normal', gain: 1 });
    expect(s.init('k_proj', 1, 0.02)).toEqual({ kind: 'xavier-normal', gain: 1 });
    for (const role of ['v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const) {
      expect(s.init(role, 3, 0.02)).toEqual({ kind: 'xavier-normal', gain: deepNormBeta(12) });
    }
    expect(s.init('embed', null, 0.02)).toEqual({ kind: 'normal', std: 0.02 });
  });

  it('scaled and depth-scaled init touch only the output projections', () => {
    const scaled = resolveScheme('pre+scaled', 12);
    expect(scaled.init('o_proj', 7, 0.02)).toEqual({ kind: 'normal', std: 0.02 / Math.sqrt(24) });
    expect(scaled.init('down_proj', 1, 0.02)).toEqual({ kind: 'normal', std: 0.02 / Math.sqrt(24) });
    expect(scaled.init('up_proj', 1, 0.02)).toEqual({ kind: 'normal', std: 0.02 });
    const depth = resolveScheme('depth-scaled', 12);
    expect(depth.init('o_proj', 3, 0.02)).toEqual({ kind: 'normal', std: 0.02 / Math.sqrt(6) });
    expect(depth.init('lm_head', null, 0.02)).toEqual({ kind: 'normal', std: 0.02 });
  });

  it('combines an init rule with any wiring, e.g. lns+scaled', () => {
    const s = resolveScheme('lns+scaled', 8);
    expect(s.name).toBe('lns+scaled');
    expect(s.block(4).normScale).toBeCloseTo(0.5, 12);
    expect(s.init('o_proj', 4, 0.02)).toEqual({ kind: 'normal', std: 0.02 / 4 });
    expect(resolveScheme('sandwich+lns+depth-scaled', 4).block(4)).toMatchObject({ wiring: 'sandwich', normScale: 0.5 });
  });

  it('layerscale and skipinit gate the sublayers', () => {
    expect(resolveScheme('layerscale', 2).block(1).gate).toEqual({ kind: 'layerscale', init: 0.1 });
    expect(resolveScheme('layerscale', 2, { layerScaleInit: 1e-4 }).block(1).gate).toEqual({ kind: 'layerscale', init: 1e-4 });
    expect(resolveScheme('skipinit', 2).block(2).gate).toEqual({ kind: 'scalar', init: 0 });
    expect(resolveScheme('lns+layerscale', 2).foldable).toBe(true);
  });
});

describe('scheme errors', () => {
  it('lists the known names for an unknown one', () => {
    expect(() => resolveScheme('rms', 4)).toThrow(
      "unknown normalization scheme 'rms'; known: pre, post, mix, sandwich, deepnorm, lns, layerscale, skipinit, scaled, depth-scaled (combine with '+', e.g. lns+scaled)",
    );
    expect(() => resolveScheme('lns+bogus', 4)).toThrow(/unknown normalization scheme 'bogus' in 'lns\+bogus'/);
  });

  it('refuses two rules of one kind and LNS without pre-norms', () => {
    expect(() => resolveScheme('post+sandwich', 4)).toThrow(/combines 'post' and 'sandwich', which are both wiring rules/);
    expect(() => resolveScheme('scaled+depth-scaled', 4)).toThrow(/both init rules/);
    expect(() => resolveScheme('post+lns', 4)).toThrow(/Post-LN blocks have none/);
    expect(() => resolveScheme('mix+lns', 8)).toThrow(/Post-LN blocks have none/);
    expect(() => resolveScheme('lns+', 4)).toThrow(/empty part/);
    expect(() => resolveScheme('lns', 0)).toThrow(/numLayers must be a positive integer/);
    expect(() => resolveScheme('lns', 4).block(5)).toThrow(/layer 5 is outside 1..4/);
  });
});

describe('registry', () => {
  it('lets user code add a scheme part that composes with the built-ins', () => {
    registerSchemePart({
      name: 'half-residual',
      category: 'scaling',
      description: 'halves each norm output',
      block: (plan) => ({ ...plan, normScale: plan.normScale * 0.5 }),
    });
    expect(knownSchemeParts().map((p) => p.name)).toContain('half-residual');
    const s = resolveScheme('sandwich+half-residual+scaled', 4);
    expect(s.block(2)).toMatchObject({ wiring: 'sandwich', normScale: 0.5 });
    expect(() => registerSchemePart({ name: 'half-residual', category: 'scaling', description: '' })).toThrow(/already registered/);
    expect(() => registerSchemePart({ name: 'Bad Name', category: 'init', description: '' })).toThrow(/lower-case/);
  });
});
