// The host's TLS session cache, in the process that decides for the host (a single process,
// or a cluster's primary, which answers its workers over IPC): Redis behind it with
// `state.redis`, the sessions saved to `tls.session_cache.file` at a stop or an upgrade and
// read back at start, its counts in /metrics and `postern status`.

import type { Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { tlsSessionCacheMetrics } from '../observe/metrics.js';
import type { TlsSessionCacheSnapshot } from '../observe/status-server.js';
import { RedisTlsSessions } from '../state/redis-tls-sessions.js';
import type { RedisLink } from '../state/redis-link.js';
import { HostSessionCache, readSessionFile, sessionCacheTtl, writeSessionFile } from '../tls/index.js';

export class TlsSessionHost {
  private constructor(
    readonly cache: HostSessionCache,
    private readonly file: string | null,
    private readonly logger: Logger,
  ) {}

  /** Null when there is nothing to hold: no TLS, or `session_cache.size: 0`. */
  static async open(config: Config, opts: { link: RedisLink | null; logger: Logger; registry: Registry }): Promise<TlsSessionHost | null> {
    const tls = config.tls;
    if (!tls || tls.session_cache.size === 0) return null;
    const cache = new HostSessionCache({
      size: tls.session_cache.size,
      ttlMs: sessionCacheTtl(tls),
      shared: opts.link ? new RedisTlsSessions(opts.link) : null,
    });
    const file = tls.session_cache.file;
    if (file) {
      try {
        const { entries, bad } = await readSessionFile(file);
        const n = cache.restore(entries);
        opts.logger.info({ event: 'tls_session_cache', file, sessions: n, expired: entries.length - n, malformed: bad }, `TLS session cache: ${n} sessions read from ${file}`);
      } catch (err) {
        opts.logger.warn({ event: 'tls_session_cache', file, err: (err as Error).message }, 'TLS session cache file not used; starting empty');
      }
    }
    tlsSessionCacheMetrics(opts.registry, () => cache.stats());
    return new TlsSessionHost(cache, file, opts.logger);
  }

  /** For /sessions and `postern status`. */
  snapshot(): TlsSessionCacheSnapshot {
    const s = this.cache.stats();
    return {
      sessions: s.sessions,
      capacity: s.capacity,
      hits: s.hits,
      redis_hits: s.sharedHits,
      misses: s.misses,
      stored: s.stored,
      redis: s.sharedUp === null ? null : s.sharedUp ? 'up' : 'down',
    };
  }

  /** Writes the sessions to `session_cache.file` (if set); never throws. */
  async save(): Promise<void> {
    if (!this.file) return;
    const entries = this.cache.entries();
    try {
      await writeSessionFile(this.file, entries);
      this.logger.info({ event: 'tls_session_cache', file: this.file, sessions: entries.length }, `TLS session cache: ${entries.length} sessions saved to ${this.file}`);
    } catch (err) {
      this.logger.warn({ event: 'tls_session_cache', file: this.file, err: (err as Error).message }, 'TLS session cache not saved');
    }
  }
}
