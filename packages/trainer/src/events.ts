import type {
  CheckpointRecord,
  DiagnosticsRecord,
  DoneRecord,
  ErrorRecord,
  EvalRecord,
  LayerDiagnosticsRecord,
  StepRecord,
  TrainingEventRecords,
} from '@deepen/core';

// The events are the records metrics.jsonl holds (declared once, in @deepen/core).

/** Emitted after every optimizer step. */
export type StepEvent = StepRecord;
export type EvalEvent = EvalRecord;
/** Per-block evidence of how much each layer does (the paper's measurements). */
export type LayerDiagnostics = LayerDiagnosticsRecord;
export type DiagnosticsEvent = DiagnosticsRecord;
export type CheckpointEvent = CheckpointRecord;
export type DoneEvent = DoneRecord;
export type ErrorEvent = ErrorRecord;
export type TrainerEvents = TrainingEventRecords;

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
