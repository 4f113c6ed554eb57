// A log line's record, parsed from JSON or from the text format, read back into the types of
// records.ts. A log is input from outside: every field is checked, a missing or odd one gets
// the value a record without it would mean, and kinds or reasons this build does not know
// (a newer version's log) are kept as strings rather than dropped.

import type { AnomalyRecord, BackendAttempt, BackendStateRecord, SessionRecord, TransactionRecord } from '../observe/records.js';

/** A session record as read: names from a newer catalog stay strings. */
/** A session's screening verdict as the report reads it (null: not screened). */
export interface ReadScreen {
  result: string;
  score: number | null;
  /** Zones that listed the client (positive weight) and that allowlisted it (negative). */
  zones: { zone: string; weight: number }[];
  tests: string[];
}

export type ReadSession = Omit<SessionRecord, 'anomalies' | 'close' | 'limit' | 'limit_rejections' | 'screen'> & {
  screen: ReadScreen | null;
  anomalies: string[];
  /** null when the record had none. */
  close: string | null;
  limit: string | null;
  limit_rejections: Record<string, number>;
};

export type ReadTransaction = Omit<TransactionRecord, 'reply' | 'result'> & {
  /** null when the record had no reply line. */
  reply: string | null;
  /** As written (accepted, tempfail, rejected, or a newer build's word); null in records from before the field. */
  result: string | null;
};

export type ReadAnomaly = Omit<AnomalyRecord, 'kind' | 'severity' | 'detail'> & { kind: string; detail: string | null };

export type ReadBackend = BackendStateRecord;

/** Any other Postern record (start-up, reload, bind_failed...): only what the report counts. */
export interface ReadOther {
  event: null | string;
  limit: string | null;
}

export type ReadRecord = ReadSession | ReadTransaction | ReadAnomaly | ReadBackend | ReadOther;

/** A Postern record with its time (ms since the epoch). */
export interface Timed {
  time: number;
  rec: ReadRecord;
}

type Rec = Record<string, unknown>;

/**
 * A parsed line as a Postern record, or null when it is not one: Postern's records are pino's,
 * with an ISO `time` and a `level` label.
 */
export function readRecord(v: unknown): Timed | null {
  const r = asRec(v);
  const time = r && typeof r.time === 'string' ? Date.parse(r.time) : NaN;
  if (!r || Number.isNaN(time) || (typeof r.level !== 'string' && typeof r.level !== 'number')) return null;
  switch (r.event) {
    case 'session':
      return { time, rec: readSession(r) };
    case 'transaction':
      return { time, rec: readTransaction(r) };
    case 'anomaly':
      return { time, rec: { event: 'anomaly', conn: str(r.conn) ?? '', kind: str(r.kind) ?? '(unknown)', detail: str(r.detail) } };
    case 'backend': {
      const address = str(r.address);
      if (address !== null && (r.state === 'up' || r.state === 'down')) {
        return { time, rec: { event: 'backend', address, state: r.state, reason: str(r.reason) ?? '' } };
      }
      return { time, rec: { event: null, limit: null } };
    }
    default:
      return { time, rec: { event: str(r.event), limit: str(r.limit) } };
  }
}

export function isSession(r: ReadRecord): r is ReadSession {
  return 'event' in r && r.event === 'session';
}
export function isTransaction(r: ReadRecord): r is ReadTransaction {
  return r.event === 'transaction';
}
export function isAnomaly(r: ReadRecord): r is ReadAnomaly {
  return r.event === 'anomaly';
}
export function isBackendState(r: ReadRecord): r is ReadBackend {
  return r.event === 'backend';
}

function readSession(r: Rec): ReadSession {
  const client = asRec(r.client);
  const tls = asRec(r.tls);
  const auth = asRec(r.auth);
  const backend = asRec(r.backend);
  const backendAddress = str(backend?.address) ?? str(r.backend);
  const rejections: Record<string, number> = {};
  const lr = asRec(r.limit_rejections);
  // A malformed map cannot make the report unbounded: a few names at most.
  if (lr) for (const [name, n] of Object.entries(lr).slice(0, 32)) if (num(n) > 0) rejections[name] = num(n);
  const anomalies: string[] = [];
  if (Array.isArray(r.anomalies)) {
    // A session lists each kind once; a malformed list is cut short, not trusted.
    for (const k of r.anomalies) if (typeof k === 'string' && !anomalies.includes(k) && anomalies.length < 32) anomalies.push(k);
  }
  const rec: ReadSession = {
    event: 'session',
    conn: str(r.conn) ?? '',
    client: { address: str(client?.address) ?? '', port: num(client?.port) },
    listener: str(r.listener) ?? '(unknown)',
    proxy: str(r.proxy) ?? (asRec(r.proxy) ? JSON.stringify(r.proxy) : null),
    tls: tls ? { version: str(tls.version) ?? '(unknown)', cipher: str(tls.cipher) ?? '', resumed: tls.resumed === true, sni: str(tls.sni) } : null,
    helo: str(r.helo),
    // Older records name the user alone.
    auth: auth ? { user: str(auth.user) ?? '', mechanism: str(auth.mechanism) ?? '' } : str(r.auth) !== null ? { user: str(r.auth)!, mechanism: '' } : null,
    backend: readBackend(backend, backendAddress),
    transactions: num(r.transactions),
    rcpts: num(r.rcpts),
    bytes_in: num(r.bytes_in),
    bytes_out: num(r.bytes_out),
    duration_ms: num(r.duration_ms),
    close: str(r.close),
    anomalies,
    limit_rejections: rejections,
    limit: str(r.limit),
    screen: readScreen(asRec(r.screen)),
  };
  return rec;
}

/** A malformed screen entry is cut short (a few zones and tests at most), never trusted whole. */
function readScreen(s: Rec | null): ReadScreen | null {
  if (!s) return null;
  const zones: ReadScreen['zones'] = [];
  if (Array.isArray(s.dnsbl)) {
    for (const h of s.dnsbl.slice(0, 16)) {
      const z = asRec(h);
      const zone = str(z?.zone);
      if (zone !== null) zones.push({ zone, weight: num(z?.weight) });
    }
  }
  const tests: string[] = [];
  if (Array.isArray(s.tests)) for (const t of s.tests.slice(0, 16)) if (typeof t === 'string' && !tests.includes(t)) tests.push(t);
  return { result: str(s.result) ?? '(unknown)', score: typeof s.score === 'number' && Number.isFinite(s.score) ? s.score : null, zones, tests };
}

/** A session's backend: the server bound (address), and the servers failed over from (attempts), either or both. */
function readBackend(backend: Rec | null, address: string | null): ReadSession['backend'] {
  const attempts: BackendAttempt[] = [];
  if (Array.isArray(backend?.attempts)) {
    // A session lists at most 16 (session/binding.ts); a longer list is cut, not trusted.
    for (const x of backend.attempts.slice(0, 16)) {
      const a = asRec(x);
      if (a) attempts.push({ server: str(a.server) ?? '(unknown)', stage: str(a.stage) ?? '(unknown)', error: str(a.error) ?? '' });
    }
  }
  if (address === null && attempts.length === 0) return null;
  return {
    address,
    identity: str(backend?.identity) ?? '',
    ...(str(backend?.local) !== null ? { local: str(backend?.local)! } : {}),
    ...(attempts.length > 0 ? { attempts } : {}),
  };
}

function readTransaction(r: Rec): ReadTransaction {
  const recipients: TransactionRecord['recipients'] = [];
  if (Array.isArray(r.recipients)) {
    for (const x of r.recipients.slice(0, 10_000)) {
      const o = asRec(x);
      if (o) recipients.push({ address: str(o.address), code: num(o.code), reply: str(o.reply) ?? '' });
    }
  }
  return {
    event: 'transaction',
    conn: str(r.conn) ?? '',
    from: str(r.from),
    rcpts: num(r.rcpts),
    size: num(r.size),
    reply: str(r.reply),
    result: str(r.result),
    // Older records may carry the backend as an object.
    backend: str(r.backend) ?? str(asRec(r.backend)?.address),
    queue_id: str(r.queue_id),
    recipients,
  };
}

const asRec = (v: unknown): Rec | null => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : null);
/** A string field; the text format prints a string of digits bare, so it may come back as a number. */
const str = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : null);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
