// The public log records as types, each with the one builder that makes it. The
// session, the server (connections refused before a session exists), /sessions and
// `postern report` all read these shapes, so a field is added in one place.

import { severityOf, type AnomalyKind, type Severity } from '../config/anomalies.js';

export type { AnomalyKind, Severity };

/** An address and port: a client, a listener, a backend connection's own side. */
export interface Endpoint {
  address: string;
  port: number;
}

/** `screened`: screening dropped the client (521 5.7.1, src/screen/). */
export type CloseReason = 'quit' | 'client_closed' | 'client_reset' | 'timeout' | 'limit' | 'backend_failed' | 'shutdown' | 'error' | 'screened';

/** A TLS session with a client, as the session record shows it. */
export interface TlsRecord {
  version: string;
  cipher: string;
  resumed: boolean;
  sni: string | null;
}

/** Who logged in (SMTP AUTH at Postern, or LOGIN told by a trusted upstream's XCLIENT). */
export interface AuthRecord {
  user: string;
  mechanism: string;
}

/** A backend the session tried and gave up on before the client's command went out (failover). */
export interface BackendAttempt {
  /** The server as configured, `HOST:PORT`. */
  server: string;
  /** The handshake step that failed: connect, greeting, ehlo, starttls, xclient, proxy, ready. */
  stage: string;
  /** Why, as the warning line says it. */
  error: string;
}

export interface BackendSessionRecord {
  /** The server as configured, `HOST:PORT`; null when no attempt succeeded (then `attempts` says why). */
  address: string | null;
  identity: string;
  /** The pool the session was routed to (`default` without routing), when it bound one. */
  pool?: string;
  /** The route that chose it (index in `routes:`), null: no route matched (the default); absent: not routed. */
  route?: number | null;
  /** Postern's own side of the backend connection, `HOST:PORT` (what the backend logs as its peer). */
  local?: string;
  /** Sessions the connection carried before this one (backends.pool.reuse). */
  reused?: number;
  /** STARTTLS with the backend. */
  tls?: { version: string; cipher: string; resumed: boolean };
  /** Connect to ready for the client's command (greeting, EHLO, STARTTLS, XCLIENT); absent on a reused connection. */
  handshake_ms?: number;
  /** Servers tried and failed over from during the session, oldest first (absent when none failed). */
  attempts?: BackendAttempt[];
}

/** What screening decided for a session (listeners with `screen: on`). */
export type ScreenResult = 'pass' | 'cached' | 'permit' | 'enforce' | 'reject' | 'drop';

export interface ScreenRecord {
  /**
   * pass: tests run, none failed with enforce or drop; cached: passed before (no wait);
   * permit / reject: screen.access; enforce: RCPTs refused, no backend; drop: 521 and closed.
   */
  result: ScreenResult;
  /** The DNSBL score, or null when no lookup ran (or it had no answer). */
  score: number | null;
  /** The zones that listed the client. */
  dnsbl: { zone: string; weight: number; answer: string }[];
  /** The tests the client failed (whatever their action): pregreet, dnsbl, pipelining, non_smtp, bare_lf, command_limit, autoban. */
  tests: string[];
  /** From accept to the greeting's verdict. */
  ms: number;
}

export function screenRecord(f: ScreenRecord): ScreenRecord {
  return { result: f.result, score: f.score, dnsbl: f.dnsbl.map(({ zone, weight, answer }) => ({ zone, weight, answer })), tests: [...f.tests], ms: f.ms };
}

export type LimitName = 'mailmax' | 'rcptmax' | 'rcptdomainmax' | 'message_size' | 'max_connections' | 'per_ip_connections' | 'per_ip_rate';

export interface SessionRecord {
  event: 'session';
  conn: string;
  client: Endpoint;
  listener: string;
  /** The PROXY/XCLIENT source that vouched for the client, or null. */
  proxy: string | null;
  tls: TlsRecord | null;
  helo: string | null;
  auth: AuthRecord | null;
  backend: BackendSessionRecord | null;
  transactions: number;
  rcpts: number;
  bytes_in: number;
  bytes_out: number;
  duration_ms: number;
  close: CloseReason;
  anomalies: AnomalyKind[];
  /** Commands refused by LIMITS or SIZE, by limit. */
  limit_rejections: Partial<Record<LimitName, number>>;
  /** The limit that ended the session: an admission limit that refused the connection, or `mailmax`. */
  limit?: LimitName;
  /** Screening's verdict, on listeners with `screen: on`. */
  screen?: ScreenRecord;
}

/** What only the session knows; the rest has defaults for a connection refused early. */
export type SessionFields = Omit<SessionRecord, 'event' | 'tls' | 'helo' | 'auth' | 'backend' | 'transactions' | 'rcpts' | 'bytes_in' | 'bytes_out' | 'anomalies' | 'limit_rejections'> &
  Partial<Pick<SessionRecord, 'tls' | 'helo' | 'auth' | 'backend' | 'transactions' | 'rcpts' | 'bytes_in' | 'bytes_out' | 'anomalies' | 'limit_rejections'>>;

export function sessionRecord(f: SessionFields): SessionRecord {
  const rec: SessionRecord = {
    event: 'session',
    conn: f.conn,
    client: f.client,
    listener: f.listener,
    proxy: f.proxy,
    tls: f.tls ?? null,
    helo: f.helo ?? null,
    auth: f.auth ?? null,
    backend: f.backend ?? null,
    transactions: f.transactions ?? 0,
    rcpts: f.rcpts ?? 0,
    bytes_in: f.bytes_in ?? 0,
    bytes_out: f.bytes_out ?? 0,
    duration_ms: f.duration_ms,
    close: f.close,
    anomalies: f.anomalies ?? [],
    limit_rejections: f.limit_rejections ?? {},
  };
  if (f.limit !== undefined) rec.limit = f.limit;
  if (f.screen !== undefined) rec.screen = f.screen;
  return rec;
}

/** A recipient as the transaction record lists it: the answer Postern or the backend gave. */
export interface RecipientRecord {
  /** null when `log.addresses: false`. */
  address: string | null;
  code: number;
  reply: string;
}

export interface TransactionRecord {
  event: 'transaction';
  conn: string;
  /** The client (after PROXY/XCLIENT), as the session record has it, for filters that act on it (fail2ban). */
  client?: Endpoint;
  /** The reverse-path (`''` for `MAIL FROM:<>`); null when `log.addresses: false`. */
  from: string | null;
  /** Recipients the backend accepted. */
  rcpts: number;
  /** Body bytes received, even when the message was refused. */
  size: number;
  /** The final reply line for the message (the backend's, or Postern's refusal). */
  reply: string;
  /**
   * What `reply` means for the message (replyResult of its code; a reply without a code is
   * tempfail): a sender the backend refused, held MAIL or not, is `rejected` (5xx) or
   * `tempfail` (4xx) with the backend's reply to MAIL.
   */
  result: ReplyResult;
  backend: string | null;
  /** The pool of that backend (`default` without routing). */
  pool?: string | null;
  /** The backend's id for the message (Postfix `queued as ID`, Exim `id=ID`), or null. */
  queue_id: string | null;
  recipients: RecipientRecord[];
}

/**
 * `addresses: false` (config `log.addresses`) leaves the sender and every recipient address
 * null, and blanks addresses that replies quote (Postfix: `550 5.1.1 <x@y>: Recipient
 * address rejected`).
 */
export function transactionRecord(f: Omit<TransactionRecord, 'event' | 'result'>, opts: { addresses?: boolean } = {}): TransactionRecord {
  const result = finalResult(f.reply);
  if (opts.addresses === false) {
    return {
      event: 'transaction',
      ...f,
      from: null,
      reply: withoutAddresses(f.reply),
      result,
      recipients: f.recipients.map((r) => ({ ...r, address: null, reply: withoutAddresses(r.reply) })),
    };
  }
  return { event: 'transaction', ...f, result };
}

/** Every `local@domain` in a reply text as `-`. */
export function withoutAddresses(text: string): string {
  return text.replace(/[^\s<>"'()[\],;]+@[^\s<>"'()[\],;]+/g, '-');
}

export interface AnomalyRecord {
  event: 'anomaly';
  conn: string;
  /** The client (after PROXY/XCLIENT), as the session record has it, for filters that act on it (fail2ban). */
  client?: Endpoint;
  kind: AnomalyKind;
  severity: Severity;
  detail: string;
}

export function anomalyRecord(conn: string, kind: AnomalyKind, detail: string, client?: Endpoint): AnomalyRecord {
  const rec: AnomalyRecord = { event: 'anomaly', conn, kind, severity: severityOf(kind), detail };
  if (client !== undefined) return { event: 'anomaly', conn, client: { address: client.address, port: client.port }, kind, severity: rec.severity, detail };
  return rec;
}

export interface BackendStateRecord {
  event: 'backend';
  address: string;
  state: 'up' | 'down';
  reason: string;
}

export function backendStateRecord(address: string, up: boolean, reason: string): BackendStateRecord {
  return { event: 'backend', address, state: up ? 'up' : 'down', reason };
}

/** What a reply code means for a message or recipient (report and metrics agree on it). */
export type ReplyResult = 'accepted' | 'tempfail' | 'rejected';

/**
 * Only a 2xx accepts a message or recipient; 5xx refuses it for good (RFC 5321 §4.2.1). A
 * 3xx is no final answer to either, and what the sender does with it is try again: tempfail.
 */
export function replyResult(code: number): ReplyResult {
  return code >= 200 && code < 300 ? 'accepted' : code >= 500 && code < 600 ? 'rejected' : 'tempfail';
}

/** What a SIGHUP did: the keys that changed, and those of them that wait for a restart. */
export interface ReloadRecord {
  event: 'reload';
  changed: string[];
  restart_needed: string[];
}

export function reloadRecord(changed: string[], restartNeeded: string[]): ReloadRecord {
  return { event: 'reload', changed, restart_needed: restartNeeded };
}

/** A SIGHUP refused (invalid config) or failed while applying; `changed` is empty when the file did not load. */
export interface ReloadFailedRecord {
  event: 'reload_failed';
  err: string;
  changed: string[];
  restart_needed: string[];
}

export function reloadFailedRecord(err: string, changed: string[] = [], restartNeeded: string[] = []): ReloadFailedRecord {
  return { event: 'reload_failed', err, changed, restart_needed: restartNeeded };
}

/**
 * `"event":"certificate"`: a certificate file pair taken into use after a change on disk
 * (`loaded`), refused with the old one kept (`refused`, with `reason`), or near its end
 * (`expiring`, logged at start and once per certificate when it enters the warning window).
 */
export interface CertificateRecord {
  event: 'certificate';
  action: 'loaded' | 'refused' | 'expiring';
  /** The certificate's first DNS name, else its file (the `name` label of the expiry metric). */
  name: string;
  file: string;
  /** ISO 8601; null when the new file could not be read. */
  not_after: string | null;
  reason?: string;
  days_left?: number;
}

export function certificateRecord(f: Omit<CertificateRecord, 'event'>): CertificateRecord {
  return { event: 'certificate', ...f };
}

/**
 * `"event":"acme"`: the ACME client's steps. `order` (this host holds the lock and orders),
 * `issued` (with `ms`, the order's wall time), `failed` (with `reason`, `attempt` and
 * `retry_in_ms`; the old certificate stays), `waiting` (another host holds the lock),
 * `loaded` (a certificate another host ordered, taken from Redis).
 */
export interface AcmeRecord {
  event: 'acme';
  action: 'order' | 'issued' | 'failed' | 'waiting' | 'loaded';
  domains: string[];
  reason?: string;
  attempt?: number;
  retry_in_ms?: number;
  ms?: number;
  not_after?: string;
}

export function acmeRecord(f: Omit<AcmeRecord, 'event'>): AcmeRecord {
  return { event: 'acme', ...f };
}

/** A final reply line's result; a line without a code is no answer the sender could act on but to retry. */
export function finalResult(reply: string): ReplyResult {
  const code = Number(/^\s*(\d{3})/.exec(reply)?.[1] ?? NaN);
  return Number.isNaN(code) ? 'tempfail' : replyResult(code);
}
