// What the process that decides for the host (a single process, or a cluster's primary)
// shares with other instances: admission and window counts, through Redis when
// `state.redis` is set, per host otherwise. Redis's state shows in a metric and on /readyz.
// Redis settings are read at start only (a SIGHUP names state.redis as needing a restart).

import type { Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { TicketKeyBacking } from '../tls/ticket-key-backing.js';
import type { Logger } from '../observe/logger.js';
import { redisUpGauge } from '../observe/metrics.js';
import { RedisLink } from '../state/redis-link.js';
import { RedisTicketKeys } from '../state/redis-ticket-keys.js';
import { RedisWindowCounter } from '../state/redis-windows.js';
import { LocalWindowCounter, type WindowCounter } from '../state/windows.js';
import { Admission, type AdmissionControl } from './admission.js';
import { SharedAdmission } from './shared-admission.js';

/** How long start-up waits for Redis before serving with per-host state. */
const FIRST_CONNECT_MS = 2000;

export class SharedState {
  private constructor(
    readonly admission: AdmissionControl,
    readonly windows: WindowCounter,
    readonly link: RedisLink | null,
  ) {}

  static async open(config: Config, opts: { logger: Logger; registry: Registry }): Promise<SharedState> {
    const redis = config.state.redis;
    if (!redis) return new SharedState(new Admission(config.limits), new LocalWindowCounter(), null);
    const link = new RedisLink({ url: redis.url, prefix: redis.prefix, logger: opts.logger });
    const gauge = redisUpGauge(opts.registry);
    gauge.set(0);
    link.on('up', () => gauge.set(1));
    link.on('down', () => gauge.set(0));
    await link.ready(FIRST_CONNECT_MS);
    return new SharedState(new SharedAdmission(config.limits, link), new RedisWindowCounter(link), link);
  }

  /** Lines for /readyz: what is shared and whether it is now. */
  details(): string[] {
    return this.link ? [this.link.describe()] : [];
  }

  async close(): Promise<void> {
    this.admission.close();
    this.windows.close();
    await this.link?.close();
  }
}

/**
 * Ticket keys in Redis for a process that terminates TLS: over `link` (a single process's
 * own), or over a link of its own (a cluster worker: its primary holds the other state).
 */
export async function redisTicketKeys(
  config: Config,
  link: RedisLink | null,
  logger: Logger,
): Promise<{ backing: TicketKeyBacking | undefined; close(): Promise<void> }> {
  const redis = config.state.redis;
  if (!redis || !config.tls?.session_tickets) return { backing: undefined, close: async () => undefined };
  if (config.tls.ticket_keys.file) {
    logger.warn({ file: config.tls.ticket_keys.file }, 'tls.ticket_keys.file is not used: with state.redis the ticket keys are kept in Redis');
  }
  const own = link ? null : new RedisLink({ url: redis.url, prefix: redis.prefix, logger });
  if (own) await own.ready(FIRST_CONNECT_MS);
  return { backing: new RedisTicketKeys((link ?? own)!), close: async () => void (await own?.close()) };
}
