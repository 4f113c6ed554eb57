// Admission before the greeting: total connections, per-client concurrency and rate.
// IPv6 clients are grouped by /64 (one customer usually holds a whole /64).

import type { LimitsConfig } from '../config/types.js';
import { clientKey } from '../net/ip.js';

export type Refusal = { limit: 'max_connections' | 'per_ip_connections' | 'per_ip_rate'; text: string };

/** The refusals, one text each (after `421 4.7.0 HOSTNAME `). */
export const REFUSED = {
  max_connections: { limit: 'max_connections', text: 'Too many connections, try again later' },
  per_ip_connections: { limit: 'per_ip_connections', text: 'Too many connections from your address' },
  per_ip_rate: { limit: 'per_ip_rate', text: 'Connection rate limit exceeded for your address' },
} as const satisfies Record<Refusal['limit'], Refusal>;

/** Admission as a listener sees it: decided here, or by the cluster primary (asynchronously). */
export interface AdmissionControl {
  admit(ip: string): Refusal | null | Promise<Refusal | null>;
  release(ip: string): void;
  /** Counts a connection without checking limits (to restore a count that was released). */
  force(ip: string): void;
  update(limits: LimitsConfig): void;
  close(): void;
}

export class Admission implements AdmissionControl {
  #total = 0;
  readonly #active = new Map<string, number>();
  /** Per client key: timestamps of recent connections (sliding window). */
  readonly #recent = new Map<string, number[]>();
  #sweep: NodeJS.Timeout;

  constructor(private limits: LimitsConfig) {
    this.#sweep = setInterval(() => this.#prune(Date.now()), 60_000);
    this.#sweep.unref();
  }

  update(limits: LimitsConfig): void {
    this.limits = limits;
  }

  get total(): number {
    return this.#total;
  }

  /** Connections held now, by client key (an IPv6 /64 or an IPv4 address). */
  held(): ReadonlyMap<string, number> {
    return this.#active;
  }

  /** Admits a connection (returns null) or says which limit refuses it. */
  admit(ip: string, now = Date.now()): Refusal | null {
    const key = clientKey(ip);
    if (this.#total >= this.limits.max_connections) {
      return REFUSED.max_connections;
    }
    const active = this.#active.get(key) ?? 0;
    if (active >= this.limits.per_ip.connections) {
      return REFUSED.per_ip_connections;
    }
    const { count, window } = this.limits.per_ip.rate;
    let times = this.#recent.get(key);
    if (!times) this.#recent.set(key, (times = []));
    while (times.length && times[0]! <= now - window) times.shift();
    if (times.length >= count) {
      return REFUSED.per_ip_rate;
    }
    times.push(now);
    this.#total++;
    this.#active.set(key, active + 1);
    return null;
  }

  /**
   * Connections `ip` could still open now before a limit refuses (the smallest room of the
   * three): how much of it the cluster primary may lease to a worker (cluster/held-admission.ts).
   */
  headroom(ip: string, now = Date.now()): number {
    const key = clientKey(ip);
    const { connections, rate } = this.limits.per_ip;
    const times = this.#recent.get(key);
    let recent = 0;
    if (times) for (let i = times.length - 1; i >= 0 && times[i]! > now - rate.window; i--) recent++;
    return Math.max(0, Math.min(this.limits.max_connections - this.#total, connections - (this.#active.get(key) ?? 0), rate.count - recent));
  }

  /** Takes back an admission that was never used (a leased one returned): its place and its rate slot. */
  unadmit(ip: string): void {
    this.release(ip);
    const times = this.#recent.get(clientKey(ip));
    times?.pop();
  }

  /** Counts a connection without checking limits (to restore a count that was released). */
  force(ip: string): void {
    const key = clientKey(ip);
    this.#total++;
    this.#active.set(key, (this.#active.get(key) ?? 0) + 1);
  }

  release(ip: string): void {
    const key = clientKey(ip);
    this.#total--;
    const n = (this.#active.get(key) ?? 1) - 1;
    if (n <= 0) this.#active.delete(key);
    else this.#active.set(key, n);
  }

  #prune(now: number): void {
    const window = this.limits.per_ip.rate.window;
    for (const [key, times] of this.#recent) {
      if (!times.length || times[times.length - 1]! <= now - window) this.#recent.delete(key);
    }
  }

  close(): void {
    clearInterval(this.#sweep);
  }
}
