// One connection to the Redis that several Postern instances share (`state.redis`), and
// whether it is usable now. Nothing waits for Redis: commands fail at once while it is
// away (no offline queue), and every user of the link falls back to per-host state. The
// link reconnects by itself, logs one warning when Redis goes away and one line when it
// is back, and tells its users (who then write their per-host state back into Redis).

import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';

// Loaded with the first link: a deployment without `state.redis` (most) never pays its start-up.
const loadRedis = (): typeof Redis => (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis;

export interface StateLog {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

export interface RedisLinkOptions {
  url: string;
  /** Prepended to every key, so several deployments can share one Redis. */
  prefix: string;
  logger: StateLog;
  /** A command not answered within this is a fault: the link reconnects (default 1000 ms). */
  commandTimeoutMs?: number;
  /** Longest pause between reconnection attempts (default 2000 ms). */
  maxRetryDelayMs?: number;
}

/** Events: `up` (usable again, or for the first time), `down` (reason). */
export class RedisLink extends EventEmitter {
  readonly client: Redis;
  readonly prefix: string;
  readonly #logger: StateLog;
  /** The URL without its password, for logs and /readyz. */
  readonly where: string;
  #up = false;
  #downSince: number | null = Date.now();
  #reason = 'not connected yet';
  #warned = false;
  #closed = false;

  constructor(opts: RedisLinkOptions) {
    super();
    this.prefix = opts.prefix;
    this.#logger = opts.logger;
    this.where = redact(opts.url);
    const timeout = opts.commandTimeoutMs ?? 1000;
    const maxDelay = opts.maxRetryDelayMs ?? 2000;
    const options: RedisOptions = {
      // Fail at once while disconnected: the caller falls back rather than waits.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: timeout,
      // A Redis that stops answering (stopped, partitioned) is dropped and redialled.
      socketTimeout: Math.max(timeout * 3, 3000),
      connectTimeout: Math.max(timeout * 2, 2000),
      retryStrategy: (times) => Math.min(50 * 2 ** times, maxDelay),
      enableAutoPipelining: true,
      connectionName: `postern-${process.pid}`,
    };
    const u = new URL(opts.url);
    const Redis = loadRedis();
    this.client = u.protocol === 'unix:' ? new Redis({ ...options, path: decodeURIComponent(u.pathname) }) : new Redis(opts.url, options);
    this.client.on('ready', () => this.#setUp());
    this.client.on('error', (err: Error) => {
      this.#reason = err.message;
    });
    this.client.on('close', () => this.#setDown(this.#reason || 'connection closed'));
  }

  get up(): boolean {
    return this.#up;
  }

  /** Resolves once Redis is usable, or after `timeoutMs` either way (start-up does not wait longer). */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.#up) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.off('up', onUp);
        resolve(ok);
      };
      const onUp = () => done(true);
      const timer = setTimeout(() => {
        this.#warn();
        done(false);
      }, timeoutMs);
      this.on('up', onUp);
    });
  }

  /** A key under this deployment's prefix. */
  key(...parts: string[]): string {
    return this.prefix + parts.join(':');
  }

  /**
   * A command failed. Redis may have applied it without our hearing the answer, so what is
   * there is no longer known to match this host: drop the connection, and let the `up` that
   * follows the reconnection write this host's state back.
   */
  fault(err: unknown): void {
    if (this.#closed) return;
    this.#reason = err instanceof Error ? err.message : String(err);
    if (!this.#up) return;
    this.#setDown(this.#reason);
    this.client.disconnect(true);
  }

  /** One line for /readyz. */
  describe(): string {
    if (this.#up) return `redis ${this.where}: up, state shared`;
    const since = this.#downSince === null ? '' : ` since ${new Date(this.#downSince).toISOString()}`;
    return `redis ${this.where}: unreachable${since} (${this.#reason}); per-host state in force`;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.removeAllListeners();
    try {
      if (this.client.status === 'ready') await this.client.quit();
      else this.client.disconnect();
    } catch {
      this.client.disconnect();
    }
  }

  #setUp(): void {
    if (this.#closed || this.#up) return;
    const wasWarned = this.#warned;
    this.#up = true;
    this.#downSince = null;
    this.#warned = false;
    this.#reason = '';
    if (wasWarned) this.#logger.info({ event: 'redis', state: 'up', url: this.where }, 'Redis reachable again: shared state resumes');
    else this.#logger.info({ event: 'redis', state: 'up', url: this.where }, 'Redis connected: state shared');
    this.emit('up');
  }

  #setDown(reason: string): void {
    if (this.#closed) return;
    if (this.#up) {
      this.#up = false;
      this.#downSince = Date.now();
      this.#reason = reason;
      this.emit('down', reason);
    }
    this.#warn();
  }

  /** One warning per outage, however many connections meet it. */
  #warn(): void {
    if (this.#warned || this.#up || this.#closed) return;
    this.#warned = true;
    this.#logger.warn(
      { event: 'redis', state: 'down', url: this.where, reason: this.#reason },
      'Redis unreachable: per-host state (connection caps, rates, auth failure windows, ticket keys, TLS session cache) until it returns',
    );
  }
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
