// Requests sent to another process (the cluster primary) and answered by id. Each call is
// settled once: by its answer, by its deadline, or when the other side is gone; a late
// answer for a call already settled is ignored.

export class PendingCalls<T> {
  #next = 0;
  readonly #open = new Map<number, { done: (value: T) => void; timer: NodeJS.Timeout | null }>();

  /** `missing`: what a call gets without an answer; `waitMs`: its deadline (0: none). */
  constructor(
    private readonly missing: T,
    private readonly waitMs = 0,
  ) {}

  /** Opens a call; send the returned id with the request. */
  open(done: (value: T) => void): number {
    const id = ++this.#next;
    const timer = this.waitMs > 0 ? setTimeout(() => this.settle(id, this.missing), this.waitMs) : null;
    this.#open.set(id, { done, timer });
    return id;
  }

  settle(id: number, value: T): void {
    const call = this.#open.get(id);
    if (!call) return;
    this.#open.delete(id);
    if (call.timer) clearTimeout(call.timer);
    call.done(value);
  }

  /** The other side is gone: every open call gets `missing` now. */
  settleAll(): void {
    for (const id of [...this.#open.keys()]) this.settle(id, this.missing);
  }

  /** Forgets every open call without settling it (the process is going away). */
  drop(): void {
    for (const call of this.#open.values()) if (call.timer) clearTimeout(call.timer);
    this.#open.clear();
  }
}
