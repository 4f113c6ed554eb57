// The anomaly catalog: names are public (../shared/CONTRACT.md), never rename one.
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

/** Which kinds get an `anomaly` log record (all are counted regardless). */
export function anomalyFilter(setting: 'all' | 'none' | readonly string[]): (kind: AnomalyKind) => boolean {
  if (setting === 'all') return () => true;
  if (setting === 'none') return () => false;
  const set = new Set(setting);
  return (kind) => set.has(kind);
}
