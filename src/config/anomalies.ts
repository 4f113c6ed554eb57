// The anomaly catalog (public names: logs, metrics and `log.anomalies` use them): every kind
// with its severity.
// `notice` is what ordinary clients do (a QUIT answered by a reset, hanging up without
// QUIT, a failed login); `warning` is what deserves a look. It lives with the config
// because `log.anomalies` validates against it.

export type Severity = 'notice' | 'warning';

export const ANOMALY_CATALOG = {
  rst_after_quit: 'notice',
  quit_no_wait: 'notice',
  pregreet: 'warning',
  pipelining_violation: 'warning',
  bare_lf: 'warning',
  non_smtp: 'warning',
  line_too_long: 'warning',
  starttls_injection: 'warning',
  tls_handshake_failed: 'warning',
  disconnect_in_data: 'warning',
  no_quit: 'notice',
  timeout: 'warning',
  proxy_header_invalid: 'warning',
  xclient_untrusted: 'warning',
  backend_protocol_error: 'warning',
  auth_failed: 'notice',
  auth_flood: 'warning',
} as const satisfies Record<string, Severity>;

export type AnomalyKind = keyof typeof ANOMALY_CATALOG;

export const ANOMALY_KINDS = Object.keys(ANOMALY_CATALOG) as AnomalyKind[];

export function isAnomalyKind(s: string): s is AnomalyKind {
  return Object.hasOwn(ANOMALY_CATALOG, s);
}

export function severityOf(kind: AnomalyKind): Severity {
  return ANOMALY_CATALOG[kind];
}
