// Prometheus metrics; the names are public (README "Operations"). Counters and histograms
// are summed over cluster workers by prom-client's AggregatorRegistry (its default `sum`
// aggregator adds each bucket, _sum and _count), so every metric here must mean the same
// when added up; the one that does not (postern_backend_up) says how it aggregates.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** How often the event-loop lag (nodejs_eventloop_lag_*) is sampled. */
const EVENT_LOOP_SAMPLE_MS = 100;

/** Session lengths: a rejected bot is gone in milliseconds, a slow sender stays minutes. */
export const SESSION_DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Message sizes from a bare notification (1 KiB) to past the 50 MB default limit. */
export const MESSAGE_SIZE_BUCKETS = [1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864, 134217728];
/** Backend handshakes: a LAN MTA answers in milliseconds; a slow greeting (tarpit, DNS) in seconds. */
export const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** `postern_health_checks_total{result}`. */
export type HealthCheckResult = 'ok' | 'failed';
/**
 * `postern_auth_total{result}`: `ok`; `invalid` (535, wrong credentials); `temporary` (454,
 * verifier unreachable or timed out); `flood` (refused by the failure limits without asking
 * the verifier); `aborted` (the client cancelled or sent a malformed exchange).
 */
export type AuthResult = 'ok' | 'invalid' | 'temporary' | 'flood' | 'aborted';
/** `postern_sessions_total{severity}`: the highest severity among a session's anomalies. */
export type SessionSeverity = 'none' | 'notice' | 'warning';

/** One server's sessions for `postern_backend_sessions_active`. */
export interface BoundSessions {
  pool: string;
  backend: string;
  active: number;
}

/** Kept once per host (by whoever runs the health checks), never per cluster worker. */
const HOST_HEALTH_METRICS = ['postern_backend_up', 'postern_health_checks_total'];

export class Metrics {
  readonly registry = new Registry();
  readonly connectionsTotal = new Counter({
    name: 'postern_connections_total',
    help: 'Client connections accepted',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });
  readonly connectionsActive = new Gauge({
    name: 'postern_connections_active',
    help: 'Client connections open now',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });
  readonly tlsHandshakes = new Counter({
    name: 'postern_tls_handshakes_total',
    help: 'Completed TLS handshakes with clients',
    labelNames: ['listener', 'resumed'] as const,
    registers: [this.registry],
  });
  readonly anomalies = new Counter({
    name: 'postern_anomalies_total',
    help: 'Protocol anomalies seen, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly limitRejections = new Counter({
    name: 'postern_limit_rejections_total',
    help: 'Commands or connections refused by a limit',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly messages = new Counter({
    name: 'postern_messages_total',
    help: 'Messages (transactions that reached a final reply), by result: accepted (2xx), tempfail (4xx, 3xx), rejected (5xx)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly backendUp = new Gauge({
    name: 'postern_backend_up',
    help: '1 when the backend server is usable',
    labelNames: ['pool', 'backend'] as const,
    // Across cluster workers: up if any worker finds it up (not the sum of their views).
    aggregator: 'max',
    registers: [this.registry],
  });
  /**
   * notAfter of each served certificate, by name (its first DNS name, else its subject CN, else
   * its file). Across cluster workers: the earliest (a worker still serving an old certificate
   * is the one that will fail first).
   */
  readonly certificateExpiry = new Gauge({
    name: 'postern_tls_certificate_expiry_timestamp_seconds',
    help: 'When each served TLS certificate expires (notAfter, seconds since the epoch), by name',
    labelNames: ['name'] as const,
    aggregator: 'min',
    registers: [this.registry],
  });
  /** Sets the expiry gauge to exactly the certificates now served (a replaced name disappears). */
  setCertificateExpiries(expiries: ReadonlyMap<string, number>): void {
    this.certificateExpiry.reset();
    for (const [name, at] of expiries) this.certificateExpiry.set({ name }, at);
  }
  /** Readers of the pools' bound sessions, one per live pool (backend/pool.ts). */
  readonly #boundSources = new Set<() => Iterable<BoundSessions>>();
  /**
   * Read from the pools at scrape time rather than set twice per session: a labelled set
   * hashes its labels each time (issue 26). Two pools of one name (a reload's old one
   * draining beside its successor) add up.
   */
  readonly backendSessions: Gauge<'pool' | 'backend'> = new Gauge({
    name: 'postern_backend_sessions_active',
    help: 'Client sessions bound to the backend server now',
    labelNames: ['pool', 'backend'] as const,
    registers: [this.registry],
    collect: () => {
      const g = this.backendSessions;
      g.reset();
      for (const read of this.#boundSources) for (const b of read()) g.inc({ pool: b.pool, backend: b.backend }, b.active);
    },
  });
  /** `read` is asked for its servers' bound sessions at each scrape, until the returned function is called. */
  reportBoundSessions(read: () => Iterable<BoundSessions>): () => void {
    this.#boundSources.add(read);
    return () => this.#boundSources.delete(read);
  }
  readonly sessionDuration = new Histogram({
    name: 'postern_session_duration_seconds',
    help: 'Client session length, from accept to close',
    buckets: SESSION_DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly messageSize = new Histogram({
    name: 'postern_message_size_bytes',
    help: 'Body bytes received per message whose body arrived, accepted or not',
    buckets: MESSAGE_SIZE_BUCKETS,
    registers: [this.registry],
  });
  readonly backendHandshake = new Histogram({
    name: 'postern_backend_handshake_seconds',
    help: 'Time from connecting to a backend to its being ready for the client (greeting, EHLO, STARTTLS, XCLIENT)',
    labelNames: ['pool', 'backend'] as const,
    buckets: HANDSHAKE_BUCKETS,
    registers: [this.registry],
  });
  readonly backendMessages = new Counter({
    name: 'postern_backend_messages_total',
    help: 'Messages relayed to a backend, by its final reply: accepted, tempfail, rejected',
    labelNames: ['pool', 'backend', 'result'] as const,
    registers: [this.registry],
  });
  readonly healthChecks = new Counter({
    name: 'postern_health_checks_total',
    help: 'Active backend health checks, by result (ok, failed)',
    labelNames: ['pool', 'backend', 'result'] as const,
    registers: [this.registry],
  });
  readonly auth = new Counter({
    name: 'postern_auth_total',
    help: 'SMTP AUTH attempts, by result (ok, invalid, temporary, flood, aborted)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly screen = new Counter({
    name: 'postern_screen_total',
    help: 'Screened sessions ended, by verdict: pass, cached, permit, enforce, reject, drop',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly dnsblQueries = new Counter({
    name: 'postern_dnsbl_queries_total',
    help: 'DNSBL/DNSWL queries, by zone and result: listed, clean, error, timeout',
    labelNames: ['zone', 'result'] as const,
    registers: [this.registry],
  });
  readonly dnsblSeconds = new Histogram({
    name: 'postern_dnsbl_seconds',
    help: 'Time a DNSBL/DNSWL query took to answer (or to time out)',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly sessions = new Counter({
    name: 'postern_sessions_total',
    help: "Client sessions ended, by the highest severity among their anomalies (none, notice, warning): warning marks a suspicious session",
    labelNames: ['severity'] as const,
    registers: [this.registry],
  });

  /**
   * `hostHealth: false` (a cluster worker): backend health is the host's (the primary checks,
   * its registry has these two), so the worker's registry leaves them out.
   */
  constructor(opts: { processMetrics?: boolean; hostHealth?: boolean } = {}) {
    // The event-loop lag histogram samples every 100 ms, not prom-client's 10: at 10 ms an idle
    // worker woke 100 times a second for it alone (4.3 of its 6 ms of CPU per second idle).
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    if (opts.hostHealth === false) for (const name of HOST_HEALTH_METRICS) this.registry.removeSingleMetric(name);
    // Label values known in advance are shown at 0, so a rate() has a series from the start.
    for (const severity of ['none', 'notice', 'warning'] satisfies SessionSeverity[]) this.sessions.inc({ severity }, 0);
  }

  /** A cluster primary's health metrics: these two, in its own registry, served next to its workers'. */
  static hostHealth(registry: Registry): Metrics {
    const m = new Metrics();
    registry.registerMetric(m.backendUp);
    registry.registerMetric(m.healthChecks);
    return m;
  }
}

/**
 * `postern_state_redis_up`: 1 while the shared Redis (`state.redis`) is usable, 0 while this
 * host falls back to per-host state. Registered only where Redis is used: the process, or
 * a cluster's primary (whose registry is served next to its workers' aggregated metrics).
 */
export function redisUpGauge(registry: Registry): Gauge {
  return new Gauge({ name: 'postern_state_redis_up', help: '1 when the shared Redis (state.redis) is usable', registers: [registry] });
}

/** What the TLS session cache metrics read: the host's cache, held by the process that registers them. */
export interface SessionCacheCounts {
  sessions: number;
  hits: number;
  sharedHits: number;
  misses: number;
  stored: number;
}

/**
 * The host's TLS session-ID cache (tls.session_cache), registered where it is held: the
 * single process, or a cluster's primary (whose registry is served next to its workers'
 * aggregated metrics), so each is one value per host, never a sum over workers.
 *  - `postern_tls_session_cache_hits_total{store}`: lookups answered, `host` from this host's
 *    cache, `redis` only found in Redis (another host's session, or one from before a restart);
 *  - `postern_tls_session_cache_misses_total`: lookups answered with nothing (a full handshake);
 *  - `postern_tls_session_cache_stores_total`: sessions stored;
 *  - `postern_tls_session_cache_sessions`: sessions held now.
 */
export function tlsSessionCacheMetrics(registry: Registry, read: () => SessionCacheCounts): void {
  new Counter({
    name: 'postern_tls_session_cache_hits_total',
    help: "TLS session-ID lookups answered by this host's session cache (store=host) or only by Redis (store=redis)",
    labelNames: ['store'] as const,
    registers: [registry],
    collect() {
      const s = read();
      this.reset();
      this.inc({ store: 'host' }, s.hits - s.sharedHits);
      this.inc({ store: 'redis' }, s.sharedHits);
    },
  });
  new Counter({
    name: 'postern_tls_session_cache_misses_total',
    help: 'TLS session-ID lookups that found no session (the client gets a full handshake)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read().misses);
    },
  });
  new Counter({
    name: 'postern_tls_session_cache_stores_total',
    help: 'TLS sessions stored in the session-ID cache',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read().stored);
    },
  });
  new Gauge({
    name: 'postern_tls_session_cache_sessions',
    help: "TLS sessions held in this host's session-ID cache",
    registers: [registry],
    collect() {
      this.set(read().sessions);
    },
  });
}

/**
 * `postern_config_last_reload_success` (1 or 0) and `postern_config_last_reload_timestamp_seconds`
 * (the last reload's time; the start's until the first SIGHUP), as Prometheus names its own.
 * Registered where reloads are decided and reported: the single process, or a cluster's
 * primary (whose registry is served next to its workers' aggregated metrics), so they are
 * one value per service, never a sum over workers.
 */
export class ReloadMetrics {
  readonly #success: Gauge;
  readonly #timestamp: Gauge;

  constructor(registry: Registry, now = Date.now()) {
    this.#success = new Gauge({
      name: 'postern_config_last_reload_success',
      help: '1 when the last configuration reload (SIGHUP) applied the new config, 0 when it was refused or failed',
      registers: [registry],
    });
    this.#timestamp = new Gauge({
      name: 'postern_config_last_reload_timestamp_seconds',
      help: 'When the configuration was last loaded (start or SIGHUP), success or not, in seconds since the epoch',
      registers: [registry],
    });
    this.record(true, now);
  }

  record(ok: boolean, now = Date.now()): void {
    this.#success.set(ok ? 1 : 0);
    this.#timestamp.set(now / 1000);
  }
}

/**
 * `postern_build_info{version,node}` = 1, registered like ReloadMetrics (one series per
 * service, whatever the number of workers).
 */
export function buildInfoMetric(registry: Registry, version: string, node = process.versions.node): void {
  const g = new Gauge({
    name: 'postern_build_info',
    help: "Postern's version and the Node.js version it runs on (always 1)",
    labelNames: ['version', 'node'] as const,
    registers: [registry],
  });
  g.set({ version, node }, 1);
}
