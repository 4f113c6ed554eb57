// Prometheus metrics; names are public (../shared/CONTRACT.md).
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

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
    help: 'Messages relayed, by result (accepted, rejected, tempfail, aborted)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly backendUp = new Gauge({
    name: 'postern_backend_up',
    help: '1 when the backend server is usable',
    labelNames: ['backend'] as const,
    // Across cluster workers: up if any worker finds it up (not the sum of their views).
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly backendSessions = new Gauge({
    name: 'postern_backend_sessions_active',
    help: 'Client sessions bound to the backend server now',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
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
