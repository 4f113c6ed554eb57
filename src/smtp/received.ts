// The Received: trace header Postern may prepend (RFC 5321 §4.4, RFC 5322 §3.6.7), so a
// backend told the client's identity by XCLIENT still learns that the client used TLS,
// which XCLIENT cannot say (RFC 3848 protocol names: ESMTPS, ESMTPA, ESMTPSA).

export interface ReceivedInfo {
  helo: string | null;
  address: string;
  port: number;
  /** PTR name if known. */
  name: string | null;
  by: string;
  esmtp: boolean;
  tls: { version: string; cipher: string } | null;
  auth: boolean;
  id: string;
  /** The one recipient, when there is exactly one (Postfix does the same). */
  rcpt: string | null;
  date: Date;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 §3.3 date-time in UTC. */
export function rfc5322Date(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** Keeps client-chosen text inside a header: printable ASCII without parentheses or brackets. */
function clean(s: string, max = 200): string {
  return s.replace(/[^\x21-\x27\x2a-\x5a\x5c\x5e-\x7e]/g, '?').slice(0, max);
}

export function receivedHeader(i: ReceivedInfo): Buffer {
  const proto = (i.esmtp ? 'ESMTP' : 'SMTP') + (i.tls ? 'S' : '') + (i.auth ? 'A' : '');
  const host = i.address.includes(':') ? `IPv6:${i.address}` : i.address;
  const lines = [`Received: from ${clean(i.helo ?? host)} (${clean(i.name ?? 'unknown')} [${host}]:${i.port})`];
  if (i.tls) lines.push(`\t(using ${clean(i.tls.version)} with cipher ${clean(i.tls.cipher)})`);
  lines.push(`\tby ${clean(i.by)} (Postern) with ${proto} id ${clean(i.id)}`);
  const tail = rfc5322Date(i.date);
  if (i.rcpt !== null && /^[^\s<>]{1,256}$/.test(i.rcpt)) lines.push(`\tfor <${i.rcpt}>; ${tail}`);
  else lines.push(`\t; ${tail}`);
  return Buffer.from(lines.join('\r\n') + '\r\n', 'utf8');
}
