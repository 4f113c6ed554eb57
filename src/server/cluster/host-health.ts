// The cluster primary's backend health checks: one round per interval for the whole host,
// whatever the number of workers, and each server once whatever the number of pools that
// list it (backend/pool-health.ts). Each change goes to every worker (their pools follow
// it, backend/health-monitor.ts); their sessions' outcomes come back and count here.

import type { HealthState, SessionOutcome } from '../../backend/health-monitor.js';
import { PoolHealth } from '../../backend/pool-health.js';
import type { Config } from '../../config/types.js';
import type { Logger } from '../../observe/logger.js';
import type { Metrics } from '../../observe/metrics.js';

export class HostHealth {
  #health: PoolHealth;
  #config: Config;

  constructor(
    config: Config,
    private readonly opts: { logger: Logger; metrics: Metrics; onChange: (h: HealthState) => void },
  ) {
    this.#config = config;
    this.#health = this.#build(config);
  }

  /** The first round (before any worker asks), then one every interval. */
  start(): Promise<void> {
    return this.#health.start();
  }

  /**
   * A reload: new checks when the pools changed, their first round done before the workers
   * ask. Removed pools stop being checked here at once; a worker's sessions still on one keep
   * the last state they were told.
   */
  async reload(next: Config): Promise<void> {
    const was = this.#config;
    this.#config = next;
    if (JSON.stringify(was.pools) === JSON.stringify(next.pools) && was.hostname === next.hostname) return;
    const health = this.#build(next);
    await health.start();
    this.#health.stop();
    this.#health = health;
  }

  stop(): void {
    this.#health.stop();
  }

  states(): HealthState[] {
    return this.#health.states();
  }

  report(o: SessionOutcome): void {
    this.#health.report(o);
  }

  #build(config: Config): PoolHealth {
    const health = new PoolHealth(config.pools, { hostname: config.hostname, logger: this.opts.logger, metrics: this.opts.metrics });
    // Only the checks in force speak to the workers (a new one's first round waits for reload).
    health.onChange((h) => {
      if (health === this.#health) this.opts.onChange(h);
    });
    return health;
  }
}
