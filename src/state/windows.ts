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

/** Counts held in this process. */
export class LocalWindowCounter implements WindowCounter {
  readonly #events = new Map<string, number[]>();
  #longest = 0;
  readonly #sweep: NodeJS.Timeout;

  constructor(private readonly now: () => number = Date.now) {
    this.#sweep = setInterval(() => this.#prune(), 60_000);
    this.#sweep.unref();
  }

  async hit(key: string, windowMs: number): Promise<number> {
    this.#longest = Math.max(this.#longest, windowMs);
    let times = this.#events.get(key);
    if (!times) this.#events.set(key, (times = []));
    times.push(this.now());
    if (times.length > MAX_EVENTS_PER_KEY) times.splice(0, times.length - MAX_EVENTS_PER_KEY);
    return this.#inWindow(times, windowMs);
  }

  async count(key: string, windowMs: number): Promise<number> {
    const times = this.#events.get(key);
    return times ? this.#inWindow(times, windowMs) : 0;
  }

  #inWindow(times: number[], windowMs: number): number {
    const since = this.now() - windowMs;
    let n = 0;
    for (let i = times.length - 1; i >= 0 && times[i]! > since; i--) n++;
    return n;
  }

  #prune(): void {
    const since = this.now() - this.#longest;
    for (const [key, times] of this.#events) {
      while (times.length && times[0]! <= since) times.shift();
      if (!times.length) this.#events.delete(key);
    }
  }

  close(): void {
    clearInterval(this.#sweep);
  }
}
