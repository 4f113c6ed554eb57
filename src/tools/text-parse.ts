// Reads a `log.format: text` line (text-format.ts) back into the record it was printed from,
// so `postern report` reads text logs as well as JSON ones. What the text form does not keep
// (types of extra fields, TLS details beyond cipher/version/SNI, a backend's identity)
// comes back as strings or not at all; everything the report counts survives.

type Rec = Record<string, unknown>;

/** `2026-11-23T11:17:38.927Z info [conn] ...`: pino's ISO time, a level label, the connection. */
const HEAD = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ([a-z]+)(?: \[([^\]\s]*)\])? /;

/** Whether a line looks like a text-format record at all (time and level first). */
export function isTextRecordLine(line: string): boolean {
  return HEAD.test(line);
}

/** The record a text line was printed from, or null when the line is not one. */
export function parseTextRecord(line: string): Rec | null {
  const head = HEAD.exec(line);
  if (!head) return null;
  const out: Rec = { time: head[1], level: head[2] };
  if (head[3] !== undefined) out.conn = head[3];
  const body = line.slice(head[0].length);
  const s = new Scanner(body);
  try {
    const word = s.bare();
    if (word === 'session' && s.peek(' H=')) return sessionRecord(s, out);
    if (word === 'transaction' && s.peek(' F=')) return transactionRecord(s, out);
    if (word === 'anomaly' && s.eat(' ')) {
      const kind = s.value();
      return { ...out, event: 'anomaly', kind, ...s.fields() };
    }
    if (word === 'backend' && s.eat(' ')) {
      const address = s.value();
      s.expect(' ');
      const state = s.value();
      if (state === 'up' || state === 'down') return { ...out, event: 'backend', address, state, ...s.fields() };
    }
  } catch (e) {
    if (!(e instanceof Syntax)) throw e;
  }
  // Another record (start-up, reload, ...): `event: msg fields` or `msg fields`; only the
  // event name matters to the report.
  const ev = /^([a-z_]+): /.exec(body);
  if (ev) out.event = ev[1];
  out.msg = body;
  return out;
}

function sessionRecord(s: Scanner, out: Rec): Rec {
  const r: Rec = { ...out, event: 'session' };
  s.expect(' H=');
  if (s.eat('(')) {
    r.helo = s.value(')');
    s.expect(') ');
  } else r.helo = null;
  // `[addr]:port`, or `"[odd addr]":port` when the address needed quoting.
  const first = s.value();
  const hostPort = typeof first === 'string' && s.eat(':') ? `${first}:${s.bare()}` : String(first);
  const m = /^\[(.*)\]:(\d*)$/s.exec(hostPort);
  if (!m) throw new Syntax();
  r.client = { address: m[1], port: m[2] === '' ? null : Number(m[2]) };
  r.proxy = null;
  r.tls = null;
  r.auth = null;
  r.backend = null;
  for (const [k, v] of s.pairs({ anomalies: () => s.list() })) {
    switch (k) {
      case 'L':
        r.listener = v;
        break;
      case 'PRX':
        r.proxy = endpoint(v);
        break;
      case 'X': {
        const cipher = String(v);
        r.tls = { version: null, cipher: cipher.replace(/\*$/, ''), resumed: cipher.endsWith('*'), sni: null };
        break;
      }
      case 'TLS':
      case 'SNI':
        if (r.tls) (r.tls as Rec)[k === 'TLS' ? 'version' : 'sni'] = v;
        break;
      case 'A':
        r.auth = { user: v, mechanism: null };
        break;
      case 'mech':
        if (r.auth) (r.auth as Rec).mechanism = v;
        break;
      case 'B':
        r.backend = { address: v };
        break;
      case 'BL':
        if (r.backend) (r.backend as Rec).local = v;
        break;
      case 'T':
        r.transactions = v;
        break;
      case 'R':
        r.rcpts = v;
        break;
      case 'in':
        r.bytes_in = v;
        break;
      case 'out':
        r.bytes_out = v;
        break;
      case 'D':
        r.duration_ms = durationMs(v);
        break;
      case 'anomalies':
        r.anomalies = v;
        break;
      default:
        r[k] = v;
    }
  }
  r.anomalies ??= [];
  return r;
}

function transactionRecord(s: Scanner, out: Rec): Rec {
  const r: Rec = { ...out, event: 'transaction', backend: null, queue_id: null, recipients: [] };
  s.expect(' F=');
  r.from = s.address();
  for (const [k, v] of s.pairs({ to: () => s.recipients() })) {
    if (k === 'R') r.rcpts = v;
    else if (k === 'S') r.size = v;
    else if (k === 'B') r.backend = v;
    else if (k === 'Q') r.queue_id = v === null ? null : String(v);
    else if (k === 'to') r.recipients = v;
    else if (k === 'C') r.reply = v === null ? null : String(v);
    else r[k] = v;
  }
  return r;
}

function endpoint(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const m = /^(.*):(\d+)$/s.exec(v);
  return m ? { address: m[1], port: Number(m[2]) } : v;
}

function durationMs(v: unknown): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(String(v));
  if (!m) return typeof v === 'number' ? v : null;
  return m[2] === 'ms' ? Number(m[1]) : Math.round(Number(m[1]) * 1000);
}

class Syntax extends Error {}

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
    if (!this.eat(text)) throw new Syntax();
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
    if (c === '{' || c === '[') {
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
    if (!this.atEnd()) throw new Syntax();
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
    if (this.#i >= this.s.length) throw new Syntax();
    this.#i++;
    try {
      return JSON.parse(this.s.slice(start, this.#i)) as unknown;
    } catch {
      throw new Syntax();
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
