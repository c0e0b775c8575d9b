import * as tf from '@tensorflow/tfjs';
import { adamUpdate, type AdamStep } from '@deepen/backend';

export interface AdamOptions {
  /** 'adam': weight decay as L2 in the gradient (PyTorch Adam); 'adamw': decoupled (Loshchilov & Hutter). */
  kind: 'adam' | 'adamw';
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Default 0 (the paper's runs). */
  weightDecay?: number;
  /** Which parameters decay. Default: matrices only (norm weights and gates do not), as most LLM recipes do. */
  decays?: (name: string, variable: tf.Variable) => boolean;
}

/** What an optimizer step changed, for diagnostics (only computed when asked). */
export interface UpdateNorms {
  /** ||update|| and ||weight|| per parameter, before the update. */
  update: Map<string, number>;
  weight: Map<string, number>;
}

/**
 * Adam / AdamW with bias correction. Its state (step count and both moments) is plain named
 * tensors, so checkpoints hold it exactly and a resumed run continues bit for bit.
 */
export class Adam {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Updates applied so far. */
  step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly decays: (name: string, variable: tf.Variable) => boolean;

  constructor(
    private readonly params: Map<string, tf.Variable>,
    readonly options: AdamOptions,
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
    this.decays = options.decays ?? ((_, variable) => variable.rank >= 2);
    for (const [name, p] of params) {
      // Made inside tidy: tf.variable(t) would otherwise leave the temporary t alive.
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)));
    }
  }

  /** Applies one update with the given gradients (keyed like the parameters). */
  apply(grads: Map<string, tf.Tensor>, lr: number, measure = false): UpdateNorms | null {
    this.step += 1;
    const t = this.step;
    const correction1 = 1 - this.beta1 ** t;
    const correction2 = 1 - this.beta2 ** t;
    const squares: tf.Scalar[] = [];
    const names: string[] = [];
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g) throw new Error(`no gradient for parameter ${name}`);
      const m = this.m.get(name) as tf.Variable;
      const v = this.v.get(name) as tf.Variable;
      const step: AdamStep = {
        lr,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        correction1,
        correction2,
        decay: this.weightDecay > 0 && this.decays(name, p) ? this.weightDecay : 0,
        decoupled: this.options.kind === 'adamw',
      };
      tf.tidy(() => {
        // One pass over the parameter where the engine has the fused kernel, about a dozen
        // elementwise kernels otherwise; both compute the same update.
        const [pNew, mNew, vNew] = adamUpdate(p, g, m, v, step);
        if (measure) {
          names.push(name);
          squares.push(tf.keep(tf.sum(tf.square(tf.sub(p, pNew)))), tf.keep(tf.sum(tf.square(p))));
        }
        m.assign(mNew);
        v.assign(vNew);
        p.assign(pNew);
      });
    }
    if (!measure) return null;
    const values = tf.tidy(() => tf.stack(squares).dataSync());
    tf.dispose(squares);
    const update = new Map<string, number>();
    const weight = new Map<string, number>();
    names.forEach((name, i) => {
      update.set(name, Math.sqrt(values[2 * i] as number));
      weight.set(name, Math.sqrt(values[2 * i + 1] as number));
    });
    return { update, weight };
  }

  /** Moments by name, for checkpoints: `m.<param>` and `v.<param>`. */
  stateTensors(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, m] of this.m) out.set(`m.${name}`, m);
    for (const [name, v] of this.v) out.set(`v.${name}`, v);
    return out;
  }

  /** Restores the moments and step count written by `stateTensors` / a checkpoint. */
  loadState(step: number, tensors: Map<string, { shape: number[]; values: Float32Array }>, source: string): void {
    for (const [prefix, store] of [['m', this.m], ['v', this.v]] as const) {
      for (const [name, variable] of store) {
        const t = tensors.get(`${prefix}.${name}`);
        if (!t) throw new Error(`${source}: optimizer state has no ${prefix}.${name}`);
        if (t.shape.join(',') !== variable.shape.join(',')) throw new Error(`${source}: ${prefix}.${name} has shape [${t.shape}], expected [${variable.shape}]`);
        tf.tidy(() => variable.assign(tf.tensor(t.values, t.shape, 'float32')));
      }
    }
    this.step = step;
  }

  dispose(): void {
    tf.dispose([...this.m.values(), ...this.v.values()]);
  }
}
