import type * as tf from '@tensorflow/tfjs';
import { LlamaModel, layerDepth, layerPrefix, type LlamaConfig } from '@deepen/models';
import type { PrunePlan } from './plans.js';

export interface ApplyOptions {
  /**
   * 'keep' (default): every surviving layer keeps the depth its scheme constants were computed
   * for (LNS keeps 1/sqrt(original l)), so the pruned model computes exactly what the original
   * computed with those layers skipped. 'recompute': constants follow the new depths.
   */
  depths?: 'keep' | 'recompute';
  /** Recorded in the pruned config, e.g. the original checkpoint's path or hub id. */
  source?: string;
}

/**
 * A new model without the plan's layers: layers renumbered, num_hidden_layers and the family's
 * per-layer settings (Qwen's layer_types / max_window_layers) updated, the plan and the original
 * model recorded in the config's deepen block. The family and its tensor names stay. The
 * original is untouched.
 */
export function applyPlan(model: LlamaModel, plan: PrunePlan, options: ApplyOptions = {}): LlamaModel {
  const L = model.config.num_hidden_layers;
  const removed = new Set(plan.remove);
  const kept = Array.from({ length: L }, (_, i) => i).filter((i) => !removed.has(i));
  if (kept.length === 0) throw new Error('the plan removes every layer');
  const keepDepths = (options.depths ?? 'keep') === 'keep';
  const original = model.config;
  const deepen = { ...original.deepen };
  delete deepen.layer_depths;
  delete deepen.scheme_num_layers;
  delete deepen.stock_runtime_compatible;
  delete deepen.note;
  const mwl = original.max_window_layers;
  const config: LlamaConfig = {
    ...original,
    num_hidden_layers: kept.length,
    // Per-layer settings follow their layers: Qwen's explicit layer types, and the index from
    // which layers slide (the kept layers below it stay the leading full-attention ones).
    layer_types: original.layer_types ? kept.map((i) => original.layer_types![i]!) : null,
    max_window_layers: mwl === null ? null : kept.filter((i) => i < mwl).length,
    deepen: {
      ...deepen,
      ...(keepDepths
        ? { layer_depths: kept.map((i) => layerDepth(original, i)), scheme_num_layers: original.deepen.scheme_num_layers ?? Math.max(L, ...(original.deepen.layer_depths ?? [])) }
        : {}),
      pruned: {
        from: options.source ?? null,
        original_num_hidden_layers: L,
        removed_layers: plan.remove,
        method: plan.method,
        detail: plan.detail,
        depths: keepDepths ? 'keep' : 'recompute',
        ...(original.deepen.pruned ? { previous: original.deepen.pruned } : {}),
      },
    },
  };
  const tensors = new Map<string, tf.Tensor>();
  for (const [name, v] of model.params) {
    const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
    if (!m) tensors.set(name, v);
    else if (!removed.has(Number(m[1]))) tensors.set(layerPrefix(kept.indexOf(Number(m[1]))) + m[2], v);
  }
  return LlamaModel.fromTensors(config, tensors, 'pruned model');
}
