// Reads a `log.format: text` line (src/observe/text-format.ts) back into the typed record it
// was printed from: a session, transaction, anomaly or backend line comes back equal to the
// record (fields a newer Postern added come back as the words or JSON they were printed as).
// Any other line keeps its event name and message. A log is input from outside: what is
// malformed is not a record (null), and record-read.ts still checks every field.

import type { AnomalyRecord, BackendSessionRecord, BackendStateRecord, SessionRecord, TransactionRecord } from '../observe/records.js';
import type { LineHead, LogLine, OtherRecord } from '../observe/text-format.js';

type Rec = Record<string, unknown>;

/** `2026-11-23T11:17:38.927Z info [conn] ...`: pino's ISO time, a level label, the connection. */
const HEAD = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ([a-z]+)(?: \[([^\]\s]*)\])? /;

/** Whether a line looks like a text-format record at all (time and level first). */
export function isTextRecordLine(line: string): boolean {
  return HEAD.test(line);
}

/** The record a text line was printed from, or null when the line is not one. */
export function parseTextRecord(line: string): LogLine | null {
  const m = HEAD.exec(line);
  if (!m) return null;
  const head: LineHead = { time: m[1]!, level: m[2]! };
  const conn = m[3];
  const body = line.slice(m[0].length);
  const s = new Scanner(body);
  try {
    const word = s.bare();
    if (conn !== undefined && word === 'session' && s.peek(' H=')) return { ...head, ...sessionRecord(s, conn) };
    if (conn !== undefined && word === 'transaction' && s.peek(' F=')) return { ...head, ...transactionRecord(s, conn) };
    if (conn !== undefined && word === 'anomaly' && s.eat(' ')) return { ...head, ...anomalyRecord(s, conn) };
    if (word === 'backend' && s.eat(' ')) {
      const r = backendRecord(s);
      if (r) return { ...head, ...r };
    }
  } catch (e) {
    if (!(e instanceof Syntax)) throw e;
  }
  // Another record (start-up, reload, ...): `event: msg fields` or `msg fields`; only the
  // event name matters to the report.
  const other: OtherRecord = {};
  if (conn !== undefined) other.conn = conn;
  const ev = /^([a-z_]+): /.exec(body);
  if (ev) other.event = ev[1];
  other.msg = body;
  return { ...head, ...other };
}

function sessionRecord(s: Scanner, conn: string): SessionRecord {
  s.expect(' H=');
  let helo: string | null = null;
  if (s.eat('(')) {
    helo = text(s.value(')'));
    s.expect(') ');
  }
  // `[addr]:port`, or `"[odd addr]":port` when the address needed quoting.
  const first = s.value();
  const hostPort = typeof first === 'string' && s.eat(':') ? `${first}:${s.bare()}` : String(first);
  const m = /^\[(.*)\]:(\d*)$/s.exec(hostPort);
  if (!m) throw SYNTAX;
  const r: SessionRecord = {
    event: 'session',
    conn,
    client: { address: m[1]!, port: Number(m[2] || 0) },
    listener: '',
    proxy: null,
    tls: null,
    helo,
    auth: null,
    backend: null,
    transactions: 0,
    rcpts: 0,
    bytes_in: 0,
    bytes_out: 0,
    duration_ms: 0,
    close: 'error',
    anomalies: [],
    limit_rejections: {},
  };
  const extra = r as unknown as Rec;
  for (const [k, v] of s.pairs({ anomalies: () => s.list() })) {
    switch (k) {
      case 'L':
        r.listener = text(v);
        break;
      case 'PRX':
        r.proxy = text(v);
        break;
      case 'X': {
        const cipher = text(v);
        r.tls = { version: '', cipher: cipher.replace(/\*$/, ''), resumed: cipher.endsWith('*'), sni: null };
        break;
      }
      case 'TLS':
        if (r.tls) r.tls.version = text(v);
        break;
      case 'SNI':
        if (r.tls) r.tls.sni = text(v);
        break;
      case 'A':
        r.auth = { user: text(v), mechanism: '' };
        break;
      case 'mech':
        if (r.auth) r.auth.mechanism = text(v);
        break;
      case 'B':
        r.backend = { address: v === null ? null : text(v), identity: '' };
        break;
      case 'BL':
        if (r.backend) r.backend.local = text(v);
        break;
      case 'BI':
        if (r.backend) r.backend.identity = text(v);
        break;
      case 'T':
        r.transactions = count(v);
        break;
      case 'R':
        r.rcpts = count(v);
        break;
      case 'in':
        r.bytes_in = count(v);
        break;
      case 'out':
        r.bytes_out = count(v);
        break;
      case 'D':
        r.duration_ms = durationMs(v);
        break;
      case 'close':
        r.close = text(v) as SessionRecord['close'];
        break;
      case 'anomalies':
        r.anomalies = v as SessionRecord['anomalies'];
        break;
      case 'limit':
        r.limit = text(v) as NonNullable<SessionRecord['limit']>;
        break;
      default:
        // backend.KEY: the backend's other fields (handshake_ms, reused, tls, attempts...).
        if (k.startsWith('backend.') && r.backend) (r.backend as BackendSessionRecord & Rec)[k.slice(8)] = v;
        else extra[k] = v;
    }
  }
  return r;
}

function transactionRecord(s: Scanner, conn: string): TransactionRecord {
  s.expect(' F=');
  // `result` comes back with the other fields (result=...); a log from before it has none.
  const r = { event: 'transaction', conn, from: s.address(), rcpts: 0, size: 0, reply: '', backend: null, queue_id: null, recipients: [] } as Omit<TransactionRecord, 'result'> as TransactionRecord;
  const extra = r as unknown as Rec;
  for (const [k, v] of s.pairs({ to: () => s.recipients() })) {
    if (k === 'R') r.rcpts = count(v);
    else if (k === 'S') r.size = count(v);
    else if (k === 'B') r.backend = text(v);
    else if (k === 'Q') r.queue_id = v === null ? null : text(v);
    else if (k === 'to') r.recipients = v as TransactionRecord['recipients'];
    else if (k === 'C') r.reply = v === null ? '' : text(v);
    else extra[k] = v;
  }
  return r;
}

function anomalyRecord(s: Scanner, conn: string): AnomalyRecord {
  const kind = text(s.value()) as AnomalyRecord['kind'];
  const r: AnomalyRecord = { event: 'anomaly', conn, kind, severity: 'warning', detail: '' };
  const extra = r as unknown as Rec;
  for (const [k, v] of s.pairs()) {
    if (k === 'severity') r.severity = text(v) as AnomalyRecord['severity'];
    else if (k === 'detail') r.detail = v === null ? '' : text(v);
    else extra[k] = v;
  }
  return r;
}

function backendRecord(s: Scanner): BackendStateRecord | null {
  const address = text(s.value());
  s.expect(' ');
  const state = s.value();
  if (state !== 'up' && state !== 'down') return null;
  const r: BackendStateRecord = { event: 'backend', address, state, reason: '' };
  const extra = r as unknown as Rec;
  for (const [k, v] of s.pairs()) {
    if (k === 'reason') r.reason = v === null ? '' : text(v);
    else extra[k] = v;
  }
  return r;
}

/** A string field read back: a bare word of digits comes back as a number, `-` as null. */
function text(v: unknown): string {
  return v === null ? '-' : typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function count(v: unknown): number {
  return typeof v === 'number' ? v : Number.NaN;
}

function durationMs(v: unknown): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(String(v));
  if (!m) return typeof v === 'number' ? v : Number.NaN;
  return m[2] === 'ms' ? Number(m[1]) : Math.round(Number(m[1]) * 1000);
}

/**
 * A line that is not the record it seemed: thrown and caught within a line, so one instance,
 * made once (building an Error per failed guess, with its stack, was a tenth of a report's time).
 */
class Syntax extends Error {}
const SYNTAX = new Syntax('not a text record');

/** `[2001:db8::1]` or `[127.0.0.1]`: a bracketed address (a colon, or a dotted quad), never JSON, so never handed to JSON.parse to find out. */
const BRACKETED_ADDRESS = /\[(?:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*|\d+\.\d+\.\d+\.\d+)\]/y;

/** Whether a bracketed address starts at `at` in `s` (sticky: no copy of the rest of the line). */
function bracketedAddressAt(s: string, at: number): boolean {
  BRACKETED_ADDRESS.lastIndex = at;
  return BRACKETED_ADDRESS.test(s);
}

/** A cursor over the body of one line. */
class Scanner {
  #i = 0;
  constructor(private readonly s: string) {}

  atEnd(): boolean {
    return this.#i >= this.s.length;
  }

  peek(text: string): boolean {
    return this.s.startsWith(text, this.#i);
  }

  eat(text: string): boolean {
    if (!this.peek(text)) return false;
    this.#i += text.length;
    return true;
  }

  expect(text: string): void {
    if (!this.eat(text)) throw SYNTAX;
  }

  /** Characters up to a space (or the end). */
  bare(stop = ' '): string {
    const start = this.#i;
    while (this.#i < this.s.length && !stop.includes(this.s[this.#i]!)) this.#i++;
    return this.s.slice(start, this.#i);
  }

  /** A JSON string, object or array, or a bare word up to a space or one of `stop`. */
  value(stop = ''): unknown {
    const c = this.s[this.#i];
    if (c === '"') return this.#json();
    if (c === '{' || (c === '[' && !bracketedAddressAt(this.s, this.#i))) {
      // A bare word may start with a bracket too ([::1]:25): JSON only if it ends where a value ends.
      const start = this.#i;
      try {
        const v = this.#json();
        if (this.atEnd() || (' ' + stop).includes(this.s[this.#i]!)) return v;
      } catch (e) {
        if (!(e instanceof Syntax)) throw e;
      }
      this.#i = start;
    }
    return typed(this.bare(' ' + stop));
  }

  /** `<address>` (a bare or JSON string inside), or `-` for a hidden one (null). */
  address(): string | null {
    if (this.eat('-')) return null;
    this.expect('<');
    const v = this.s[this.#i] === '"' ? this.#json() : this.bare('>');
    this.expect('>');
    return String(v);
  }

  /** `<addr>:reply,<addr>:reply` -> [{address, code, reply}]. */
  recipients(): Rec[] {
    const out: Rec[] = [];
    do {
      const address = this.address();
      this.expect(':');
      const v = this.value(',');
      const reply = v === null ? '' : String(v);
      out.push({ address, code: Number(/^\d{3}/.exec(reply)?.[0] ?? NaN), reply });
    } while (this.eat(','));
    return out;
  }

  /** ` key=value` pairs to the end; `special` reads the value of the keys it names. */
  *pairs(special: Record<string, () => unknown> = {}): Generator<[string, unknown]> {
    while (this.eat(' ')) {
      const key = this.bare('= ');
      this.expect('=');
      const read = special[key];
      yield [key, read ? read() : this.value()];
    }
    if (!this.atEnd()) throw SYNTAX;
  }

  /** `a,b,"c d"`: a comma-separated list of values (one value is a list of one). */
  list(): string[] {
    const out = [String(this.value(','))];
    while (this.eat(',')) out.push(String(this.value(',')));
    return out;
  }

  fields(): Rec {
    const r: Rec = {};
    for (const [k, v] of this.pairs()) r[k] = v;
    return r;
  }

  /** One JSON value starting here: strings, objects and arrays (whose strings may hold anything). */
  #json(): unknown {
    const start = this.#i;
    let depth = 0;
    let inString = false;
    for (; this.#i < this.s.length; this.#i++) {
      const c = this.s[this.#i]!;
      if (inString) {
        if (c === '\\') this.#i++;
        else if (c === '"') {
          inString = false;
          if (depth === 0) break;
        }
      } else if (c === '"') inString = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        if (--depth === 0) break;
      }
    }
    if (this.#i >= this.s.length) throw SYNTAX;
    this.#i++;
    try {
      return JSON.parse(this.s.slice(start, this.#i)) as unknown;
    } catch {
      throw SYNTAX;
    }
  }
}

/** A bare word as the value it was printed from: numbers, booleans, `-` for null. */
function typed(w: string): unknown {
  if (w === '-') return null;
  if (w === 'true') return true;
  if (w === 'false') return false;
  // Only a number's own spelling: `0123` (a user, a queue id) stays a string.
  if (/^-?\d+(\.\d+)?$/.test(w) && String(Number(w)) === w) return Number(w);
  return w;
}
