// One call per log record updates every metric that record concerns, so the code that
// writes a record never touches a histogram itself and the two cannot disagree.

import { severityOf, isAnomalyKind, type Severity } from '../config/anomalies.js';
import type { AuthResult, HealthCheckResult, Metrics, SessionSeverity } from './metrics.js';
import { type AnomalyRecord, type SessionRecord, type TransactionRecord } from './records.js';

/**
 * The highest severity among a session's anomalies: `warning` marks a suspicious session,
 * `notice` one with only what ordinary clients do. A kind this build does not know counts as
 * a warning (a record from a newer version should not hide as harmless).
 */
export function sessionSeverity(anomalies: readonly string[]): SessionSeverity {
  let worst: SessionSeverity = 'none';
  for (const k of anomalies) {
    const s: Severity = isAnomalyKind(k) ? severityOf(k) : 'warning';
    if (s === 'warning') return 'warning';
    worst = 'notice';
  }
  return worst;
}

/** The session ended: its duration, its severity, and the backend handshake it made. */
export function observeSession(m: Metrics, rec: SessionRecord): void {
  m.sessionDuration.observe(Math.max(0, rec.duration_ms) / 1000);
  m.sessions.inc({ severity: sessionSeverity(rec.anomalies) });
  if (rec.screen) m.screen.inc({ result: rec.screen.result });
  const hs = rec.backend?.handshake_ms;
  const backend = rec.backend?.address;
  const pool = rec.backend?.pool ?? 'default';
  if (backend && hs !== undefined && Number.isFinite(hs)) m.backendHandshake.observe({ pool, backend }, Math.max(0, hs) / 1000);
}

/** A message reached its final reply: result overall and per backend, and its size. */
export function observeTransaction(m: Metrics, rec: TransactionRecord): void {
  // The record says (records.ts finalResult); one classification for logs, metrics and report.
  const result = rec.result;
  m.messages.inc({ result });
  if (rec.backend !== null) m.backendMessages.inc({ pool: rec.pool ?? 'default', backend: rec.backend, result });
  // No body arrived (refused at DATA, or before): nothing to measure.
  if (rec.size > 0) m.messageSize.observe(rec.size);
}

/** An anomaly happened. */
export function observeAnomaly(m: Metrics, rec: AnomalyRecord): void {
  m.anomalies.inc({ kind: rec.kind });
}

/** A DNSBL query ended (the DNSBL client's `hooks.query`). */
export function observeDnsblQuery(m: Metrics, zone: string, result: string, seconds: number): void {
  m.dnsblQueries.inc({ zone, result });
  m.dnsblSeconds.observe(Math.max(0, seconds));
}

/** An SMTP AUTH attempt ended. */
export function observeAuth(m: Metrics, result: AuthResult): void {
  m.auth.inc({ result });
}

/** An active health check of `backend` (`HOST:PORT` as configured) ended; `pool`: the pool that checks it. */
export function observeHealthCheck(m: Metrics, backend: string, result: HealthCheckResult, pool = 'default'): void {
  m.healthChecks.inc({ pool, backend, result });
}
