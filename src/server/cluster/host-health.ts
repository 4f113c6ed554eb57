// The cluster primary's backend health checks: one round per interval for the whole host,
// whatever the number of workers. Each change goes to every worker (their pools follow it,
// backend/health-monitor.ts); their sessions' outcomes come back and count here.

import { HealthMonitor, healthState, type HealthState, type SessionOutcome } from '../../backend/health-monitor.js';
import { ServerState } from '../../backend/server-state.js';
import type { Config } from '../../config/types.js';
import type { Logger } from '../../observe/logger.js';
import type { Metrics } from '../../observe/metrics.js';

export class HostHealth {
  #monitor: HealthMonitor;
  #config: Config;

  constructor(
    config: Config,
    private readonly opts: { logger: Logger; metrics: Metrics; onChange: (h: HealthState) => void },
  ) {
    this.#config = config;
    this.#monitor = this.#build(config);
  }

  /** The first round (before any worker asks), then one every interval. */
  start(): Promise<void> {
    return this.#monitor.start();
  }

  /** A reload: new checks when the backends changed, their first round done before the workers ask. */
  async reload(next: Config): Promise<void> {
    const was = this.#config;
    this.#config = next;
    if (JSON.stringify(was.backends) === JSON.stringify(next.backends) && was.hostname === next.hostname) return;
    const monitor = this.#build(next);
    await monitor.start();
    this.#monitor.stop();
    this.#monitor = monitor;
  }

  stop(): void {
    this.#monitor.stop();
  }

  states(): HealthState[] {
    return this.#monitor.states();
  }

  report(o: SessionOutcome): void {
    this.#monitor.report(o);
  }

  #build(config: Config): HealthMonitor {
    const servers = config.backends.servers.map((s) => new ServerState(s));
    const monitor: HealthMonitor = new HealthMonitor(servers, config.backends, {
      hostname: config.hostname,
      logger: this.opts.logger,
      metrics: this.opts.metrics,
      // Only the monitor in force speaks to the workers (a new one's first round waits for reload).
      onChange: (s) => {
        if (monitor === this.#monitor) this.opts.onChange(healthState(s));
      },
    });
    return monitor;
  }
}
