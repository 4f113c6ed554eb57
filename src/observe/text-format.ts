// `log.format: text`: one line per record, made from the typed record itself (logger.ts hands
// it over before pino would serialize it; no JSON is made or parsed). The session line follows
// Exim's mainlog and Haraka's disconnect summary:
//   <time> <level> [conn] session H=(helo) [addr]:port L=listener PRX=.. X=cipher* TLS=.. SNI=..
//       A=user mech=MECH B=backend BL=local BI=identity backend.KEY=.. T= R= in= out= D= close= anomalies=a,b
//   <time> <level> [conn] transaction F=<from> R= S= B=backend Q=queue_id to=<rcpt>:"reply",... C="final reply"
//   <time> <level> [conn] anomaly KIND severity=notice|warning detail="..."
//   <time> <level> backend ADDRESS up|down reason="..."
// BL= is Postern's own side of the backend connection (what the backend logs as its peer), BI=
// how the backend was told the client; the backend's other fields (handshake_ms, reused, tls,
// attempts, ...) follow as backend.KEY=value. Q= is the backend's queue id; `-` stands for null
// (an address hidden by `log.addresses: false`). Fields a record has beyond these print as
// key=value (objects as compact JSON), so a newer record loses nothing. Values a client chose
// (HELO, sender, details) are quoted and escaped when they hold spaces, quotes or control
// characters, so a record can never spill onto a second line, and every line reads back to
// the same record (src/tools/text-parse.ts does, for `postern report`).

import type { AnomalyRecord, BackendSessionRecord, BackendStateRecord, SessionRecord, TransactionRecord } from './records.js';

/** What pino adds to every record: its time (ISO), its level label, and the connection where there is one. */
export interface LineHead {
  time: string;
  level: string;
}

/** Any other record (start-up, reload, a backend lost mid-session...): a message and free fields. */
export interface OtherRecord {
  event?: string;
  msg?: string;
  conn?: string;
  [field: string]: unknown;
}

/** The four records `postern report` counts, by their event. */
export type PosternRecord = SessionRecord | TransactionRecord | AnomalyRecord | BackendStateRecord;

/** One log line's content: the head and a record (typed when its event is one of the four). */
export type LogLine = LineHead & (PosternRecord | OtherRecord);

type Fields = Record<string, unknown>;

export function formatTextLine(line: LogLine): string {
  // The message is the logger's (`session`, `anomaly KIND`...): a typed record's line says more.
  const { time, level, msg, ...rec } = line as LineHead & OtherRecord;
  return formatRecordLine({ time, level }, rec, msg);
}

/** The line of `rec` logged at `head`'s time and level (logger.ts calls this with the record as logged). */
export function formatRecordLine(head: LineHead, rec: PosternRecord | OtherRecord, msg?: unknown): string {
  const c = (rec as { conn?: unknown }).conn;
  const start = `${controls(head.time)} ${controls(head.level)}${typeof c === 'string' ? ` [${controls(c)}]` : ''}`;
  // The four event names belong to the typed records (records.ts builds every one of them).
  switch (rec.event) {
    case 'session':
      return `${start} session ${sessionLine(rec as SessionRecord)}`;
    case 'transaction':
      return `${start} transaction ${transactionLine(rec as TransactionRecord)}`;
    case 'anomaly':
      return `${start} anomaly ${anomalyLine(rec as AnomalyRecord)}`;
    case 'backend':
      // A backend's state change; other records about a backend carry no `event: backend`.
      if (typeof rec.address === 'string' && (rec.state === 'up' || rec.state === 'down')) return `${start} backend ${backendLine(rec as BackendStateRecord)}`;
  }
  const { event, conn: _conn, msg: _msg, ...rest } = rec as OtherRecord;
  const body = `${event !== undefined ? `${q(str(event))}: ` : ''}${msg !== undefined ? controls(str(msg)) : ''} ${kv(rest)}`;
  return `${start} ${body.trimEnd()}`;
}

function sessionLine(r: SessionRecord): string {
  const { event: _e, conn: _c, client, listener, proxy, tls, helo, auth, backend, transactions, rcpts, bytes_in, bytes_out, duration_ms, close, anomalies, limit_rejections, ...rest } = r;
  // Exim brackets every address, IPv6 included: [::1]:25.
  const parts = [`H=${helo !== null ? `(${q(helo, /[()]/)}) ` : ''}${q(`[${client.address}]`)}:${client.port}`];
  parts.push(`L=${q(listener)}`);
  if (proxy !== null) parts.push(`PRX=${q(proxy)}`);
  if (tls) {
    parts.push(`X=${q(tls.cipher)}${tls.resumed ? '*' : ''}`);
    if (tls.version) parts.push(`TLS=${q(tls.version)}`);
    if (tls.sni !== null) parts.push(`SNI=${q(tls.sni)}`);
  }
  if (auth) parts.push(`A=${q(auth.user)}`, `mech=${q(auth.mechanism)}`);
  if (backend) parts.push(...backendParts(backend));
  parts.push(`T=${transactions}`, `R=${rcpts}`, `in=${bytes_in}`, `out=${bytes_out}`, `D=${duration(duration_ms)}`, `close=${q(close)}`);
  if (anomalies.length > 0) parts.push(`anomalies=${anomalies.map((x) => q(x, /,/)).join(',')}`);
  // An empty map says nothing; a session that had commands refused shows them.
  const more: Fields = { ...rest };
  if (Object.keys(limit_rejections).length > 0) more.limit_rejections = limit_rejections;
  return joined(parts, more);
}

function backendParts(b: BackendSessionRecord): string[] {
  const { address, local, identity, ...rest } = b;
  // No address: every server failed (the attempts say how, as backend.attempts).
  const parts = [address === null ? 'B=-' : `B=${q(address)}`];
  if (local !== undefined) parts.push(`BL=${q(local)}`);
  parts.push(`BI=${q(identity)}`);
  const more = kv(rest, 'backend.');
  return more ? [...parts, more] : parts;
}

function transactionLine(r: TransactionRecord): string {
  const { event: _e, conn: _c, from, rcpts, size, backend, queue_id, recipients, reply, ...rest } = r;
  const parts = [`F=${address(from)}`, `R=${rcpts}`, `S=${size}`];
  if (backend !== null) parts.push(`B=${q(backend)}`);
  if (queue_id !== null) parts.push(`Q=${q(queue_id)}`);
  // A recipient's code is its reply's first three digits.
  if (recipients.length > 0) parts.push(`to=${recipients.map((x) => `${address(x.address)}:${q(x.reply, /,/)}`).join(',')}`);
  // Exim's C="..." is the confirmation the next hop gave.
  parts.push(`C=${quote(reply)}`);
  return joined(parts, rest);
}

function anomalyLine(r: AnomalyRecord): string {
  const { event: _e, conn: _c, kind, severity, ...rest } = r;
  return joined([q(kind), `severity=${q(severity)}`], rest);
}

function backendLine(r: BackendStateRecord): string {
  const { event: _e, address, state, ...rest } = r;
  return joined([q(address), state], rest);
}

function joined(parts: string[], rest: Fields): string {
  const more = kv(rest);
  return more ? `${parts.join(' ')} ${more}` : parts.join(' ');
}

/** `<local@domain>` (`<>` for the null sender), or `-` for an address hidden by log.addresses. */
function address(v: string | null): string {
  return v === null ? '-' : `<${q(v, undefined, true)}>`;
}

/** Fields as key=value (objects as compact JSON, an Error as its message), `prefix` before each key. */
function kv(r: Fields, prefix = ''): string {
  return Object.entries(r)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${prefix}${k}=${value(v)}`)
    .join(' ');
}

function value(v: unknown): string {
  if (v === null) return '-';
  if (v instanceof Error) return quote(v.message);
  if (typeof v === 'object') return escapeJson(JSON.stringify(v));
  if (typeof v === 'string') return q(v);
  return str(v);
}

/** Milliseconds as `114ms` or `61.500s`: both read back exactly (whole milliseconds; a fraction keeps its ms form). */
function duration(ms: number): string {
  return ms >= 1000 && Number.isInteger(ms) ? `${(ms / 1000).toFixed(3)}s` : `${ms}ms`;
}

const str = (v: unknown): string => (v === undefined ? '' : v === null ? '-' : typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v));

/**
 * Bare when plain printable ASCII (or, in an address, no space/quote/angle bracket), else a
 * JSON string. `also` names characters that must be quoted where they would end the value
 * (a comma in a list, a parenthesis around the HELO name).
 */
function q(s: string, also?: RegExp, inAddress = false): string {
  if (s === '' && inAddress) return s;
  // Words that read back as null or a boolean are quoted when they are text.
  if (!inAddress && (s === '-' || s === 'true' || s === 'false')) return quote(s);
  if (s !== '' && (inAddress ? /^[^\s"\\<>\x00-\x1f\x7f-\x9f\u2028\u2029]+$/ : /^[\x21-\x7e]+$/).test(s) && !/["\\]/.test(s) && !also?.test(s)) return s;
  return quote(s);
}

const quote = (s: string): string => escapeJson(JSON.stringify(s));

/** JSON.stringify leaves C1 controls and the Unicode line separators raw; escape them too. */
const escapeJson = (s: string): string =>
  s.replace(/[\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** Free text (msg, time, level) kept readable, with controls escaped. */
const controls = (s: string): string =>
  s.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
