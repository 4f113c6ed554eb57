// The outcome of a SIGHUP, told once per service (by the single process, or a cluster's
// primary for all its workers): one `reload` or `reload_failed` record naming the changed
// keys and those that need a restart, and the reload metrics.

import type { Registry } from 'prom-client';
import type { ReloadPlan } from '../config/reload-plan.js';
import type { Logger } from '../observe/logger.js';
import { ReloadMetrics } from '../observe/metrics.js';
import { reloadFailedRecord, reloadRecord } from '../observe/records.js';

export class ReloadReport {
  readonly #metrics: ReloadMetrics;

  constructor(
    private readonly logger: Logger,
    registry: Registry,
  ) {
    this.#metrics = new ReloadMetrics(registry);
  }

  /** The new config is in force, but for `plan.restart`, named in the message as well. */
  applied(plan: ReloadPlan): void {
    this.#metrics.record(true);
    const msg = plan.restart.length
      ? `configuration reloaded except ${plan.restart.join(', ')}: ${plan.restart.length === 1 ? 'it needs' : 'they need'} a restart or an upgrade (SIGUSR2)`
      : 'configuration reloaded';
    this.logger[plan.restart.length ? 'warn' : 'info'](reloadRecord(plan.changed, plan.restart), msg);
  }

  /** Refused (`plan` null: the file did not load) or failed while applying. */
  failed(err: string, plan: ReloadPlan | null): void {
    this.#metrics.record(false);
    const msg = plan ? 'reload failed' : 'reload refused: invalid config';
    this.logger.error(reloadFailedRecord(err, plan?.changed, plan?.restart), msg);
  }
}
