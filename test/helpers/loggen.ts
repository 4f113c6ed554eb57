// A synthetic Postern JSON log with known contents, for `postern report` tests. A seeded
// PRNG makes it deterministic; the generator tallies what it wrote, independently of the
// report's code, so the test can demand exact counts.

import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { ANOMALY_CATALOG, ANOMALY_KINDS } from '../../src/config/anomalies.js';
import { formatTextLine, type LogLine } from '../../src/observe/text-format.js';

export interface LogGenOptions {
  sessions: number;
  seed?: number;
  /** First record's time (ms since the epoch). */
  start?: number;
  /** Mean gap between sessions. */
  meanGapMs?: number;
  /** Distinct client addresses (skewed, so there is a top); 0 = a fresh address per session. */
  clients?: number;
  helos?: number;
  /** Non-JSON, non-Postern JSON and other Postern lines mixed in. */
  noise?: boolean;
  /** A backend goes down about once per this many sessions. */
  backendEvery?: number;
  /** Keep per-client / HELO / offender tallies (turn off for huge logs with fresh addresses). */
  tally?: boolean;
  /** Write every line as `log.format: text` prints it. */
  text?: boolean;
}

interface Traffic {
  sessions: number;
  messages: number;
  accepted: number;
}

interface BackendExpect {
  sessions: number;
  transactions: number;
  accepted: number;
  tempfail: number;
  rejected: number;
  failed_sessions: number;
  down_events: number;
  up_events: number;
  down_ms: number;
  down_at_end: boolean;
}

export interface LogExpect {
  lines: number;
  records: number;
  not_json: number;
  not_postern: number;
  other_records: number;
  first: number;
  last: number;
  sessions: number;
  session_transactions: number;
  messages: { accepted: number; tempfail: number; rejected: number };
  recipients: number;
  accepted_recipients: number;
  accepted_bytes: number;
  bytes_in: number;
  bytes_out: number;
  max_duration_ms: number;
  sessions_with_anomalies: number;
  /** A warning among the session's anomalies. */
  sessions_suspicious: number;
  sessions_notice_only: number;
  sessions_without_helo: number;
  close: Record<string, number>;
  per_hour: Map<string, Traffic>;
  clients: Map<string, number>;
  helos: Map<string, number>;
  anomalies: Record<string, { sessions: number; records: number }>;
  offenders: Record<string, Map<string, number>>;
  tls: Record<string, { sessions: number; tls: number; resumed: number; versions: Record<string, number> }>;
  backends: Record<string, BackendExpect>;
  limits: Record<string, { sessions_closed: number; records: number }>;
  /** Every RCPT the generator answered, by what became of it. */
  rcpt: { answered: number; accepted: number; delivered: number; not_delivered: number; refused: number; refused_tempfail: number; refused_rejected: number; abandoned: number };
  /** Refusal reasons as the generator wrote them, with addresses written as `-`. */
  rcpt_refusals: Map<string, { source: 'postern' | 'backend'; code: number; count: number }>;
  message_refusals: Map<string, { source: 'postern' | 'backend'; code: number; count: number }>;
  senders: Map<string, number>;
  recipients_top: Map<string, number>;
  domains: Map<string, number>;
  users: Map<string, number>;
  tls_sessions: number;
  tls_resumed: number;
}

/** RCPT answers: [share, code, reply text around the address, source]. */
const RCPT_ANSWERS: [number, number, (a: string) => string, 'postern' | 'backend'][] = [
  [0.8, 250, () => '250 2.1.5 Ok', 'backend'],
  [0.08, 550, (a) => `550 5.1.1 <${a}>: Recipient address rejected: User unknown in virtual mailbox table`, 'backend'],
  [0.05, 554, (a) => `554 5.7.1 <${a}>: Recipient address rejected: Access denied`, 'backend'],
  [0.04, 450, (a) => `450 4.2.0 <${a}>: Recipient address rejected: Greylisted, see https://postgrey.example/`, 'backend'],
  [0.03, 452, () => '452 4.5.3 Too many recipients', 'postern'],
];

/** mulberry32: small, fast, good enough for test data. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const BACKENDS = ['10.0.0.11:25', '10.0.0.12:25', '[2001:db8::25]:25'];
const LISTENERS: [name: string, share: number, tls: number][] = [
  ['smtp', 0.6, 0.5],
  ['submission', 0.25, 0.9],
  ['smtps', 0.15, 1],
];
const CLOSES: [string, number][] = [
  ['quit', 0.72],
  ['client_closed', 0.08],
  ['client_reset', 0.03],
  ['timeout', 0.03],
  ['limit', 0.06],
  ['backend_failed', 0.04],
  ['shutdown', 0.02],
  ['error', 0.02],
];
const LIMITS = ['per_ip_connections', 'per_ip_rate', 'max_connections', 'mailmax'];

function pick<T>(r: () => number, table: [T, number, ...unknown[]][]): [T, number, ...unknown[]] {
  let x = r();
  for (const row of table) {
    x -= row[1];
    if (x < 0) return row;
  }
  return table[table.length - 1]!;
}

function bump(m: Map<string, number>, k: string): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

const hourOf = (t: number) => new Date(t).toISOString().slice(0, 13);

/** A record as the logger gets it, or a raw line (noise from elsewhere). */
export type GenLine = LogLine | string;

/** The log's lines as JSON (without newlines); `expect` is filled as they are produced. */
export function* generateLines(o: LogGenOptions, expect: LogExpect = emptyExpect()): Generator<string> {
  for (const l of generateRecords(o, expect)) yield typeof l === 'string' ? l : JSON.stringify(l);
}

/** The log's records (and noise lines); `expect` is filled as they are produced. */
export function* generateRecords(o: LogGenOptions, expect: LogExpect = emptyExpect()): Generator<GenLine> {
  const r = prng(o.seed ?? 1);
  const int = (n: number) => Math.floor(r() * n);
  const clients = o.clients ?? 500;
  const helos = o.helos ?? 200;
  const noise = o.noise ?? true;
  const backendEvery = o.backendEvery ?? 2000;
  const tally = o.tally ?? true;
  const e = expect;
  let t = o.start ?? Date.UTC(2026, 0, 1, 0, 0, 0);
  let conn = 0;

  const stamp = (time: number, level = 'info') => {
    e.records++;
    e.lines++;
    if (time < e.first) e.first = time;
    if (time > e.last) e.last = time;
    return { level, time: new Date(time).toISOString() };
  };
  const traffic = (time: number) => {
    const h = hourOf(time);
    let x = e.per_hour.get(h);
    if (!x) e.per_hour.set(h, (x = { sessions: 0, messages: 0, accepted: 0 }));
    return x;
  };
  const backend = (a: string) => (e.backends[a] ??= newBackend());

  // Every backend is announced up at start-up, as the pool does.
  for (const a of BACKENDS) {
    backend(a).up_events++;
    yield { ...stamp(t), event: 'backend', address: a, state: 'up', reason: 'health check passed', msg: `backend ${a} up` } as LogLine;
  }
  yield { ...stamp(t), listener: 'smtp', msg: 'listening on 0.0.0.0:25' } as LogLine;
  e.other_records++;
  const downSince = new Map<string, number>();
  const upAt = new Map<string, number>();

  for (let i = 0; i < o.sessions; i++) {
    t += int(2 * (o.meanGapMs ?? 1000));
    const id = `c${(++conn).toString(36)}`;

    // Backend episodes: an up record once its time has come, a new outage now and then.
    for (const [a, when] of upAt) {
      if (when > t) continue;
      upAt.delete(a);
      const b = backend(a);
      b.up_events++;
      b.down_ms += when - downSince.get(a)!;
      downSince.delete(a);
      yield { ...stamp(when), event: 'backend', address: a, state: 'up', reason: 'health check passed', msg: `backend ${a} up` } as LogLine;
    }
    if (int(backendEvery) === 0) {
      const a = BACKENDS[int(BACKENDS.length)]!;
      if (!downSince.has(a)) {
        const b = backend(a);
        b.down_events++;
        downSince.set(a, t);
        upAt.set(a, t + 1000 + int(600_000));
        yield { ...stamp(t, 'warn'), event: 'backend', address: a, state: 'down', reason: 'health check: connect ECONNREFUSED', msg: `backend ${a} down` } as LogLine;
      }
    }

    if (noise && i % 997 === 3) {
      e.lines++;
      e.not_json++;
      yield `Mar  1 10:00:00 mx postfix/smtpd[${i}]: connect from unknown[10.0.0.1]`;
    }
    if (noise && i % 1009 === 5) {
      e.lines++;
      e.not_postern++;
      yield JSON.stringify({ event: 'message', id: 'ABC', from: 'a@b.c', rcpts: ['d@e.f'], size: 10 });
    }
    if (noise && i % 4999 === 7) {
      e.other_records++;
      yield { ...stamp(t), event: 'reload', msg: 'configuration reloaded' } as LogLine;
    }

    const address = clients > 0 ? clientAddress(Math.floor(clients * r() * r())) : clientAddress(int(0x7fffffff) + 0x10000);
    const [listener, , tlsShare] = pick(r, LISTENERS) as [string, number, number];
    const [close] = pick(r, CLOSES) as [string, number];
    const helo = int(20) === 0 ? null : `mail${Math.floor(helos * r() * r())}.example.com`;
    const tls = r() < tlsShare ? { version: r() < 0.8 ? 'TLSv1.3' : 'TLSv1.2', cipher: 'TLS_AES_256_GCM_SHA384', resumed: r() < 0.3, sni: null } : null;
    const limit = close === 'limit' ? LIMITS[int(LIMITS.length)]! : int(50) === 0 ? 'rcptmax' : null;
    const bound = close === 'limit' ? null : close === 'backend_failed' && int(2) === 0 ? null : BACKENDS[int(BACKENDS.length)]!;
    const ntx = close === 'quit' && bound ? int(4) : 0;

    let rcptsTotal = 0;
    for (let k = 0; k < ntx; k++) {
      // Every RCPT with its answer: mostly 250, some refused by the backend, some by Postern.
      const recipients: { address: string; code: number; reply: string }[] = [];
      const refusedHere: [string, 'postern' | 'backend', number][] = [];
      for (let n = 1 + int(5); n > 0; n--) {
        const address = `u${Math.floor(50 * r() * r())}@d${int(8)}.example`;
        let y = r();
        const row = RCPT_ANSWERS.find(([share]) => (y -= share) < 0) ?? RCPT_ANSWERS[0]!;
        recipients.push({ address, code: row[1], reply: row[2](address) });
        if (row[1] >= 400) refusedHere.push([row[2]('-'), row[3], row[1]]);
      }
      const rcpts = recipients.filter((x) => x.code === 250).length;
      const size = 200 + int(100_000);
      const x = r();
      const result = rcpts === 0 ? 'rejected' : x < 0.85 ? 'accepted' : x < 0.95 ? 'tempfail' : 'rejected';
      const postern = result === 'rejected' && rcpts > 0 && int(2) === 0;
      const reply =
        result === 'accepted'
          ? `250 2.0.0 Ok: queued as Q${i}x${k}`
          : result === 'tempfail'
            ? '451 4.3.0 Try again later'
            : rcpts === 0
              ? '554 5.5.1 Error: no valid recipients'
              : postern
                ? '552 5.3.4 Message size exceeds fixed limit'
                : '550 5.7.1 Rejected';
      const from = int(20) === 0 ? '' : `s${Math.floor(100 * r() * r())}@example.org`;
      bump(e.senders, from === '' ? '<>' : from);
      if (result !== 'accepted') {
        const m = e.message_refusals.get(reply) ?? { source: postern ? 'postern' : 'backend', code: Number(reply.slice(0, 3)), count: 0 };
        m.count++;
        e.message_refusals.set(reply, m);
      }
      for (const [reason, source, code] of refusedHere) {
        const m = e.rcpt_refusals.get(reason) ?? { source, code, count: 0 };
        m.count++;
        e.rcpt_refusals.set(reason, m);
      }
      e.rcpt.answered += recipients.length;
      e.rcpt.accepted += rcpts;
      e.rcpt.refused += recipients.length - rcpts;
      e.rcpt.refused_rejected += recipients.filter((x) => x.code >= 500).length;
      e.rcpt.refused_tempfail += recipients.filter((x) => x.code >= 400 && x.code < 500).length;
      if (result === 'accepted') {
        e.rcpt.delivered += rcpts;
        for (const x of recipients) {
          if (x.code !== 250) continue;
          bump(e.recipients_top, x.address);
          bump(e.domains, x.address.slice(x.address.indexOf('@') + 1));
        }
      } else e.rcpt.not_delivered += rcpts;
      rcptsTotal += rcpts;
      const when = t - 1;
      e.messages[result]++;
      const tr = traffic(when);
      tr.messages++;
      if (result === 'accepted') {
        tr.accepted++;
        e.accepted_recipients += rcpts;
        e.accepted_bytes += size;
      }
      const b = backend(bound!);
      b.transactions++;
      b[result]++;
      const queueId = result === 'accepted' ? `Q${i}x${k}` : null;
      yield { ...stamp(when), event: 'transaction', conn: id, from, rcpts, size, reply, backend: bound, queue_id: queueId, recipients, msg: 'transaction' } as LogLine;
    }
    // A transaction given up before the end of DATA (RSET, QUIT): its accepted RCPTs are in
    // the session's count and in no transaction record.
    if (bound && int(10) === 0) {
      const n = 1 + int(3);
      rcptsTotal += n;
      e.rcpt.abandoned += n;
    }
    const auth = listener === 'submission' && int(10) !== 0 ? { user: `user${Math.floor(30 * r() * r())}@example.org`, mechanism: 'PLAIN' } : null;
    if (auth) bump(e.users, auth.user);

    const anomalies: string[] = [];
    if (close === 'client_closed') anomalies.push('no_quit');
    if (close === 'timeout') anomalies.push('timeout');
    if (int(20) === 0) {
      const k = ANOMALY_KINDS[int(ANOMALY_KINDS.length)]!;
      if (!anomalies.includes(k)) anomalies.push(k);
    }
    for (const k of anomalies) {
      const a = (e.anomalies[k] ??= { sessions: 0, records: 0 });
      a.sessions++;
      if (tally) bump((e.offenders[k] ??= new Map()), address);
      // log.anomalies may leave some unlogged: the session still lists them.
      if (int(5) !== 0) {
        a.records++;
        yield { ...stamp(t), event: 'anomaly', conn: id, kind: k, severity: ANOMALY_CATALOG[k as keyof typeof ANOMALY_CATALOG], detail: `synthetic ${k}`, msg: `anomaly ${k}` } as LogLine;
      }
    }

    const rec = {
      ...stamp(t),
      event: 'session',
      conn: id,
      client: { address, port: 1024 + int(60000) },
      listener,
      proxy: null,
      tls,
      helo,
      auth,
      backend: bound ? { address: bound, identity: 'xclient' } : null,
      transactions: ntx,
      rcpts: rcptsTotal,
      bytes_in: 100 + int(200_000),
      bytes_out: 100 + int(5_000),
      duration_ms: int(60_000),
      close,
      ...(limit ? { limit } : {}),
      anomalies,
      limit_rejections: {},
      msg: 'session',
    };
    e.sessions++;
    e.session_transactions += ntx;
    e.recipients += rcptsTotal;
    e.bytes_in += rec.bytes_in;
    e.bytes_out += rec.bytes_out;
    e.max_duration_ms = Math.max(e.max_duration_ms, rec.duration_ms);
    if (anomalies.length) {
      e.sessions_with_anomalies++;
      if (anomalies.some((k) => ANOMALY_CATALOG[k as keyof typeof ANOMALY_CATALOG] === 'warning')) e.sessions_suspicious++;
      else e.sessions_notice_only++;
    }
    e.close[close] = (e.close[close] ?? 0) + 1;
    traffic(t).sessions++;
    if (tally) bump(e.clients, address);
    if (helo === null) e.sessions_without_helo++;
    else if (tally) bump(e.helos, helo);
    const tl = (e.tls[listener] ??= { sessions: 0, tls: 0, resumed: 0, versions: {} });
    tl.sessions++;
    if (tls) {
      tl.tls++;
      e.tls_sessions++;
      if (tls.resumed) {
        tl.resumed++;
        e.tls_resumed++;
      }
      tl.versions[tls.version] = (tl.versions[tls.version] ?? 0) + 1;
    }
    if (bound) backend(bound).sessions++;
    if (close === 'backend_failed') backend(bound ?? '(none)').failed_sessions++;
    if (limit) {
      const l = (e.limits[limit] ??= { sessions_closed: 0, records: 0 });
      if (close === 'limit') l.sessions_closed++;
      else l.records++;
    }
    yield rec as LogLine;
  }
  // Outages still open at the end run to the last record.
  for (const [a, since] of downSince) {
    const b = backend(a);
    b.down_ms += e.last - since;
    b.down_at_end = true;
  }
}

function clientAddress(n: number): string {
  if (n % 10 === 9) return `2001:db8::${(n >>> 0).toString(16)}`;
  return `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function newBackend(): BackendExpect {
  return { sessions: 0, transactions: 0, accepted: 0, tempfail: 0, rejected: 0, failed_sessions: 0, down_events: 0, up_events: 0, down_ms: 0, down_at_end: false };
}

export function emptyExpect(): LogExpect {
  return {
    lines: 0,
    records: 0,
    not_json: 0,
    not_postern: 0,
    other_records: 0,
    first: Infinity,
    last: -Infinity,
    sessions: 0,
    session_transactions: 0,
    messages: { accepted: 0, tempfail: 0, rejected: 0 },
    recipients: 0,
    accepted_recipients: 0,
    accepted_bytes: 0,
    bytes_in: 0,
    bytes_out: 0,
    max_duration_ms: 0,
    sessions_with_anomalies: 0,
    sessions_suspicious: 0,
    sessions_notice_only: 0,
    sessions_without_helo: 0,
    close: {},
    per_hour: new Map(),
    clients: new Map(),
    helos: new Map(),
    anomalies: {},
    offenders: {},
    tls: {},
    backends: {},
    limits: {},
    rcpt: { answered: 0, accepted: 0, delivered: 0, not_delivered: 0, refused: 0, refused_tempfail: 0, refused_rejected: 0, abandoned: 0 },
    rcpt_refusals: new Map(),
    message_refusals: new Map(),
    senders: new Map(),
    recipients_top: new Map(),
    domains: new Map(),
    users: new Map(),
    tls_sessions: 0,
    tls_resumed: 0,
  };
}

/** Writes the log to `path` (with backpressure) and returns what it holds. */
export async function writeLog(path: string, o: LogGenOptions): Promise<LogExpect & { bytes: number }> {
  const expect = emptyExpect();
  const out = createWriteStream(path);
  let buf = '';
  let bytes = 0;
  for (const l of generateRecords(o, expect)) {
    buf += (typeof l === 'string' ? l : o.text ? formatTextLine(l) : JSON.stringify(l)) + '\n';
    if (buf.length >= 1 << 20) {
      bytes += Buffer.byteLength(buf);
      if (!out.write(buf)) await once(out, 'drain');
      buf = '';
    }
  }
  bytes += Buffer.byteLength(buf);
  out.end(buf);
  await once(out, 'finish');
  return { ...expect, bytes };
}

/** The top `n` of a tally, ordered as the report orders them (count down, then name). */
export function topOf(m: Map<string, number>, n: number): { name: string; count: number; error: number }[] {
  return [...m.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, n)
    .map(([name, count]) => ({ name, count, error: 0 }));
}
