// Health checks for every pool of a config, each server once: a server listed in several
// pools is checked with the settings of the first pool that lists it, and every pool's
// copy of it follows that one result (the pools take it as their HealthFeed, as a cluster
// worker's pools take the primary's). Used by a single process and by a cluster's primary.

import type { BackendsConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
import { HealthMonitor, healthState, type HealthFeed, type HealthState, type SessionOutcome } from './health-monitor.js';
import { ServerState } from './server-state.js';

export interface PoolHealthOptions {
  hostname: string;
  logger: Logger;
  metrics: Metrics;
}

export class PoolHealth implements HealthFeed {
  readonly #monitors: HealthMonitor[] = [];
  /** Server key → the monitor that checks it. */
  readonly #owner = new Map<string, HealthMonitor>();
  readonly #handlers = new Set<(s: HealthState) => void>();
  #started: Promise<void> | null = null;

  constructor(pools: Record<string, BackendsConfig>, opts: PoolHealthOptions) {
    for (const [name, cfg] of Object.entries(pools)) {
      const own: ServerState[] = [];
      for (const sc of cfg.servers) {
        const s = new ServerState(sc);
        if (this.#owner.has(s.key) || own.some((o) => o.key === s.key)) continue;
        own.push(s);
      }
      if (own.length === 0) continue;
      const monitor = new HealthMonitor(own, cfg, { ...opts, pool: name, onChange: (s) => this.#changed(healthState(s)) });
      this.#monitors.push(monitor);
      for (const s of own) this.#owner.set(s.key, monitor);
    }
  }

  /** Distinct servers checked (a server in two pools counts once). */
  get size(): number {
    return this.#owner.size;
  }

  /** The first round of every check; later calls wait for the same round. */
  start(): Promise<void> {
    return (this.#started ??= Promise.all(this.#monitors.map((m) => m.start())).then(() => undefined));
  }

  stop(): void {
    for (const m of this.#monitors) m.stop();
  }

  states(): HealthState[] {
    return this.#monitors.flatMap((m) => m.states());
  }

  async current(): Promise<HealthState[]> {
    await this.start();
    return this.states();
  }

  onChange(handler: (s: HealthState) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  report(o: SessionOutcome): void {
    this.#owner.get(o.key)?.report(o);
  }

  #changed(h: HealthState): void {
    for (const f of this.#handlers) f(h);
  }
}
