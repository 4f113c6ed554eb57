// `log.format: text`: one line per record. The session line follows Exim's mainlog and
// Haraka's disconnect summary:
//   <time> <level> [conn] session H=(helo) [addr]:port L=listener PRX=.. X=cipher* TLS=.. SNI=..
//       A=user mech=MECH B=backend BL=local T= R= in= out= D= close= anomalies=a,b
//   <time> <level> [conn] transaction F=<from> R= S= B=backend Q=queue_id to=<rcpt>:"reply",... C="final reply"
//   <time> <level> [conn] anomaly KIND severity=notice|warning detail="..."
//   <time> <level> backend ADDRESS up|down reason="..."
// BL= is Postern's own side of the backend connection (what the backend logs as its peer);
// Q= the backend's queue id; `-` stands for an address hidden by `log.addresses: false`.
// Values a client chose (HELO, sender, details) are quoted and escaped when they hold
// spaces, quotes or control characters, so a record can never spill onto a second line,
// and every line can be read back (text-parse.ts does, for `postern report`).

type Rec = Record<string, unknown>;

export function formatTextRecord(json: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return controls(json.trimEnd());
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return controls(json.trimEnd());
  const { time, level, conn, msg, event, ...r } = parsed as Rec;
  const head = `${controls(str(time))} ${controls(str(level))}${conn !== undefined && conn !== null ? ` [${controls(str(conn))}]` : ''}`;
  const body =
    event === 'session'
      ? `session ${sessionLine(r)}`
      : event === 'transaction'
        ? `transaction ${transactionLine(r)}`
        : event === 'anomaly'
          ? `anomaly ${take(r, 'kind', qs)} ${r.severity !== undefined ? `severity=${take(r, 'severity', qs)} ` : ''}${kv(r)}`
          : event === 'backend'
            ? `backend ${take(r, 'address', qs)} ${take(r, 'state', qs)} ${kv(r)}`
            : `${event !== undefined ? `${qs(event)}: ` : ''}${msg !== undefined ? controls(str(msg)) : ''} ${kv(r)}`;
  return `${head} ${body.trimEnd()}`;
}

function sessionLine(r: Rec): string {
  const client = rec(take(r, 'client'));
  const helo = take(r, 'helo');
  // Exim brackets every address, IPv6 included: [::1]:25.
  const host = `[${str(client?.address ?? '')}]`;
  const parts = [`H=${helo !== null && helo !== undefined ? `(${q(str(helo), /[()]/)}) ` : ''}${q(host)}:${q(str(client?.port ?? ''))}`];
  parts.push(`L=${q(str(take(r, 'listener')))}`);
  const proxy = take(r, 'proxy');
  if (proxy !== null && proxy !== undefined) parts.push(`PRX=${q(endpoint(proxy))}`);
  const tls = rec(take(r, 'tls'));
  if (tls) {
    parts.push(`X=${q(str(tls.cipher))}${tls.resumed === true ? '*' : ''}`);
    if (tls.version) parts.push(`TLS=${q(str(tls.version))}`);
    if (tls.sni) parts.push(`SNI=${q(str(tls.sni))}`);
  }
  const auth = take(r, 'auth');
  const a = rec(auth);
  if (a) {
    parts.push(`A=${q(str(a.user))}`);
    if (a.mechanism !== undefined && a.mechanism !== null) parts.push(`mech=${q(str(a.mechanism))}`);
  } else if (auth !== null && auth !== undefined) parts.push(`A=${q(str(auth))}`);
  const backend = take(r, 'backend');
  const b = rec(backend);
  if (b) {
    // No address: every server failed, and `attempts` (printed with the rest, as JSON) says how.
    if (b.address !== null && b.address !== undefined) parts.push(`B=${q(str(b.address))}`);
    if (typeof b.local === 'string') parts.push(`BL=${q(b.local)}`);
    if (Array.isArray(b.attempts) && b.attempts.length > 0) r.attempts = b.attempts;
  } else if (typeof backend === 'string') parts.push(`B=${q(backend)}`);
  parts.push(`T=${str(take(r, 'transactions'))}`, `R=${str(take(r, 'rcpts'))}`);
  parts.push(`in=${str(take(r, 'bytes_in'))}`, `out=${str(take(r, 'bytes_out'))}`);
  parts.push(`D=${duration(take(r, 'duration_ms'))}`);
  parts.push(`close=${q(str(take(r, 'close')))}`);
  const anomalies = take(r, 'anomalies');
  if (Array.isArray(anomalies) && anomalies.length > 0) parts.push(`anomalies=${anomalies.map((x) => q(str(x), /,/)).join(',')}`);
  // An empty map says nothing; a session that had commands refused shows them.
  const lr = rec(r.limit_rejections);
  if (lr && Object.keys(lr).length === 0) delete r.limit_rejections;
  const rest = kv(r);
  return rest ? `${parts.join(' ')} ${rest}` : parts.join(' ');
}

function transactionLine(r: Rec): string {
  const parts = [`F=${address(take(r, 'from'))}`, `R=${str(take(r, 'rcpts'))}`, `S=${str(take(r, 'size'))}`];
  const backend = take(r, 'backend');
  if (backend !== undefined && backend !== null) parts.push(`B=${q(typeof backend === 'string' ? backend : str(rec(backend)?.address))}`);
  const queueId = take(r, 'queue_id');
  if (queueId !== undefined && queueId !== null) parts.push(`Q=${q(str(queueId))}`);
  const recipients = take(r, 'recipients');
  if (Array.isArray(recipients) && recipients.length > 0) {
    parts.push(`to=${recipients.map((x) => `${address(rec(x)?.address)}:${q(str(rec(x)?.reply), /,/)}`).join(',')}`);
  }
  // Exim's C="..." is the confirmation the next hop gave.
  const reply = take(r, 'reply');
  if (reply !== undefined) parts.push(`C=${quote(str(reply))}`);
  const rest = kv(r);
  return rest ? `${parts.join(' ')} ${rest}` : parts.join(' ');
}

/** `<local@domain>` (`<>` for the null sender), or `-` for an address hidden by log.addresses. */
function address(v: unknown): string {
  if (v === null || v === undefined) return '-';
  return `<${q(str(v), undefined, true)}>`;
}

/** Removes and returns r[key], so what is left can be printed as key=value. */
function take(r: Rec, key: string): unknown;
function take<T>(r: Rec, key: string, f: (v: unknown) => T): T;
function take<T>(r: Rec, key: string, f?: (v: unknown) => T): unknown {
  const v = r[key];
  delete r[key];
  return f ? f(v) : v;
}

/** The fields no formatter claimed, as key=value (objects as compact JSON). */
function kv(r: Rec): string {
  return Object.entries(r)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v === null ? '-' : typeof v === 'object' ? escapeJson(JSON.stringify(v)) : typeof v === 'string' ? q(v) : str(v)}`)
    .join(' ');
}

function endpoint(v: unknown): string {
  const o = rec(v);
  if (!o) return str(v);
  if (o.address !== undefined) return o.port !== undefined ? `${str(o.address)}:${str(o.port)}` : str(o.address);
  return JSON.stringify(o);
}

function duration(v: unknown): string {
  if (typeof v !== 'number') return str(v);
  return v < 1000 ? `${Math.round(v)}ms` : `${(v / 1000).toFixed(3)}s`;
}

const rec = (v: unknown): Rec | null => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : null);
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

const qs = (v: unknown): string => q(str(v));

const quote = (s: string): string => escapeJson(JSON.stringify(s));

/** JSON.stringify leaves C1 controls and the Unicode line separators raw; escape them too. */
const escapeJson = (s: string): string =>
  s.replace(/[\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** Free text (msg, a non-JSON line) kept readable, with controls escaped. */
const controls = (s: string): string =>
  s.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
