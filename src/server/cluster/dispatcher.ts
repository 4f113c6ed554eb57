// One router per process for the cluster's IPC: every message kind has its handlers,
// registered by the IPC client that owns the kind (admission, windows, TLS sessions, health,
// control), and one listener per process (a worker's process 'message', the primary's
// cluster 'message') hands each message, batches unwrapped, to the handlers of its kind.

import { isMessage, unwrap, type SingleMessage } from './messages.js';

export type Kind = SingleMessage['postern'];
export type MessageOf<K extends Kind> = Extract<SingleMessage, { postern: K }>;
type Handler<C> = (m: SingleMessage, from: C, handle: unknown) => void;

/** `C`: where a message came from (a worker, on the primary; nothing, on a worker). */
export class Dispatcher<C> {
  readonly #handlers = new Map<Kind, Set<Handler<C>>>();

  /** Registers `handler` for messages of `kind`; returns what unregisters it. */
  on<K extends Kind>(kind: K, handler: (m: MessageOf<K>, from: C, handle: unknown) => void): () => void {
    let set = this.#handlers.get(kind);
    if (!set) this.#handlers.set(kind, (set = new Set()));
    const h = handler as Handler<C>;
    set.add(h);
    return () => void set.delete(h);
  }

  /** One IPC message (maybe a batch): each message in it to its kind's handlers, in order. */
  dispatch(raw: unknown, from: C, handle?: unknown): void {
    if (!isMessage(raw)) return;
    for (const m of unwrap(raw)) {
      const set = this.#handlers.get(m.postern);
      if (set) for (const h of [...set]) h(m, from, handle);
    }
  }
}

let workerSide: Dispatcher<void> | null = null;

/** A worker's dispatcher: the one listener on the primary's messages, installed on first use. */
export function fromPrimary(): Dispatcher<void> {
  if (!workerSide) {
    const d = new Dispatcher<void>();
    process.on('message', (m: unknown, handle: unknown) => d.dispatch(m, undefined, handle));
    workerSide = d;
  }
  return workerSide;
}
