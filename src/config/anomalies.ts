// Anomaly kinds as named in CONTRACT.md; `log.anomalies` may list any of them.
export const ANOMALY_KINDS = [
  'rst_after_quit',
  'quit_no_wait',
  'pregreet',
  'pipelining_violation',
  'bare_lf',
  'non_smtp',
  'line_too_long',
  'starttls_injection',
  'tls_handshake_failed',
  'disconnect_in_data',
  'no_quit',
  'timeout',
  'proxy_header_invalid',
  'xclient_untrusted',
  'backend_protocol_error',
] as const;

export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

const KNOWN: ReadonlySet<string> = new Set(ANOMALY_KINDS);

export function isAnomalyKind(s: string): s is AnomalyKind {
  return KNOWN.has(s);
}
