/** Emitted after every optimizer step. */
export interface StepEvent {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  clipped: boolean;
  /** Tokens whose loss counted in this step. */
  tokens: number;
  tokensPerSecond: number;
  /** Model FLOPs per second achieved (from the config's training FLOPs per token). */
  flopsPerSecond: number;
  /** Seconds since the run (or resumption) started. */
  elapsed: number;
}

export interface EvalEvent {
  step: number;
  loss: number;
  perplexity: number;
  /** Share of counted positions where the most likely token is the target. */
  accuracy: number;
  tokens: number;
}

/** Per-block evidence of how much each layer does (the paper's measurements). */
export interface LayerDiagnostics {
  /** 0-based layer index. */
  layer: number;
  /** Variance of the residual stream after the block (over tokens and channels). */
  outputVariance: number;
  /** Norm of the block's gradient at this step. */
  gradNorm: number;
  /** ||update|| / ||weights|| of the block at this step. */
  updateRatio: number;
}

export interface DiagnosticsEvent {
  step: number;
  layers: LayerDiagnostics[];
}

export interface CheckpointEvent {
  step: number;
  dir: string;
}

export interface DoneEvent {
  reason: 'completed' | 'interrupted';
  step: number;
  /** The last evaluation, if any. */
  eval: EvalEvent | null;
  checkpoint: string | null;
}

export interface ErrorEvent {
  step: number;
  message: string;
  /** 0-based layer where things went bad, when it can be told. */
  layer: number | null;
}

export interface TrainerEvents {
  step: StepEvent;
  eval: EvalEvent;
  diagnostics: DiagnosticsEvent;
  checkpoint: CheckpointEvent;
  done: DoneEvent;
  error: ErrorEvent;
}

type Listener<T> = (event: T) => void;

/** A small typed event emitter (unlike Node's, an 'error' event with no listener does not throw). */
export class Emitter<Events> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Subscribes; returns a function that unsubscribes. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    for (const listener of this.listeners.get(event) ?? []) (listener as Listener<Events[K]>)(payload);
  }
}
