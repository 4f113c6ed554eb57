// Routing at run time (issue #24): the named pools of a config with their health checks
// (each server checked once, backend/pool-health.ts), and the route table compiled from
// `routes:` with its domain files read. The pools live until a reload changes them; the
// table is compiled again at every reload (domain files are read again on SIGHUP).

import type { Config } from '../config/types.js';
import type { HealthFeed } from '../backend/health-monitor.js';
import { PoolHealth } from '../backend/pool-health.js';
import { BackendPool } from '../backend/pool.js';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
export { compileRoutes } from '../route/compile.js';

export interface PoolSetOptions {
  logger: Logger;
  metrics: Metrics;
  /** The host's health (a cluster's primary): followed instead of checking here. */
  feed: HealthFeed | null;
}

/** The pools of one config and what checks their servers. */
export class PoolSet {
  readonly pools: ReadonlyMap<string, BackendPool>;
  readonly #health: PoolHealth | null;

  constructor(
    readonly config: Pick<Config, 'pools' | 'hostname'>,
    opts: PoolSetOptions,
  ) {
    this.#health = opts.feed ? null : new PoolHealth(config.pools, { hostname: config.hostname, logger: opts.logger, metrics: opts.metrics });
    const feed = opts.feed ?? this.#health;
    this.pools = new Map(
      Object.entries(config.pools).map(([name, cfg]) => [name, new BackendPool(cfg, { hostname: config.hostname, logger: opts.logger, metrics: opts.metrics, feed, name })]),
    );
  }

  /** The pool `default`, or the first: what a session not yet routed offers and reads. */
  get front(): BackendPool {
    return this.pools.get('default') ?? this.pools.values().next().value!;
  }

  get(name: string): BackendPool | undefined {
    return this.pools.get(name);
  }

  /** Whether `next` needs new pools (anything in them, or the name they greet with, changed). */
  differs(next: Pick<Config, 'pools' | 'hostname'>): boolean {
    return JSON.stringify(this.config.pools) !== JSON.stringify(next.pools) || this.config.hostname !== next.hostname;
  }

  /** The first round of checks, then every pool follows them. */
  async start(): Promise<void> {
    await this.#health?.start();
    await Promise.all([...this.pools.values()].map((p) => p.start()));
  }

  stop(): void {
    this.#health?.stop();
    for (const p of this.pools.values()) p.stop();
  }

  /**
   * Replaced by a reload: each pool stops once its last session ends; the health checks
   * stop with the last of them (sessions under way keep their pool, and its health).
   */
  retire(): void {
    let left = this.pools.size;
    const one = () => {
      if (--left === 0) this.#health?.stop();
    };
    for (const p of this.pools.values()) p.retire(one);
  }
}
