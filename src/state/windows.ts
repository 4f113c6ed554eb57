// Sliding-window event counters (auth failures per IP and per user, and the like). The
// interface is asynchronous so that the same caller works with counts held in this
// process, by the cluster primary, or in Redis for several hosts.

export interface WindowCounter {
  /** Records one event for `key` now; resolves to the events in the last `windowMs`, this one included. */
  hit(key: string, windowMs: number): Promise<number>;
  /** The events for `key` in the last `windowMs`, recording nothing. */
  count(key: string, windowMs: number): Promise<number>;
  close(): void;
}

/** Most events kept per key: a counter only has to tell "over the limit", never count a flood exactly. */
const MAX_EVENTS_PER_KEY = 10_000;

/**
 * Most keys held: the pass cache keeps one per client for a day, so a busy MX (or a flood
 * from rotating addresses) would otherwise grow the map without end. Past it the oldest key
 * goes: a forgotten pass costs that client one more screening, a forgotten failure count
 * one more try; memory stays bounded (about 200 bytes a key).
 */
export const MAX_KEYS = 200_000;

/** Counts held in this process. */
export class LocalWindowCounter implements WindowCounter {
  /** Event times per key, and the longest window the key was hit with (what pruning keeps). */
  readonly #events = new Map<string, { times: number[]; windowMs: number }>();
  readonly #sweep: NodeJS.Timeout;

  constructor(
    private readonly now: () => number = Date.now,
    private readonly maxKeys = MAX_KEYS,
  ) {
    this.#sweep = setInterval(() => this.#prune(), 60_000);
    this.#sweep.unref();
  }

  async hit(key: string, windowMs: number): Promise<number> {
    let e = this.#events.get(key);
    if (!e) {
      // A Map iterates in insertion order: the first key is the oldest.
      if (this.#events.size >= this.maxKeys) this.#events.delete(this.#events.keys().next().value!);
      this.#events.set(key, (e = { times: [], windowMs }));
    }
    // Per key: one long-lived key (a known address, days) must not keep every short one.
    e.windowMs = Math.max(e.windowMs, windowMs);
    const times = e.times;
    times.push(this.now());
    if (times.length > MAX_EVENTS_PER_KEY) times.splice(0, times.length - MAX_EVENTS_PER_KEY);
    return this.#inWindow(times, windowMs);
  }

  async count(key: string, windowMs: number): Promise<number> {
    const e = this.#events.get(key);
    return e ? this.#inWindow(e.times, windowMs) : 0;
  }

  /** Keys held (for tests and the memory bound). */
  get keys(): number {
    return this.#events.size;
  }

  #inWindow(times: number[], windowMs: number): number {
    const since = this.now() - windowMs;
    let n = 0;
    for (let i = times.length - 1; i >= 0 && times[i]! > since; i--) n++;
    return n;
  }

  #prune(): void {
    const now = this.now();
    for (const [key, { times, windowMs }] of this.#events) {
      const since = now - windowMs;
      let old = 0;
      while (old < times.length && times[old]! <= since) old++;
      if (old === times.length) this.#events.delete(key);
      else if (old > 0) times.splice(0, old);
    }
  }

  close(): void {
    clearInterval(this.#sweep);
  }
}
