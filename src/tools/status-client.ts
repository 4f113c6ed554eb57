// `postern status [--metrics ADDR | -c FILE] [--watch [SECONDS]]`: the live sessions and backend
// states from the metrics listener's /sessions, as a terminal table.

import { ConfigError, loadConfig, type Config, type HostPort } from '../config/index.js';
import { watchReader, type Out } from './output.js';
import { DEFAULT_STATUS_ADDR, STATUS_USAGE } from './usage.js';
import type { BackendSnapshot, SessionSnapshot, TlsSessionCacheSnapshot } from '../observe/status-server.js';

const FETCH_TIMEOUT_MS = 3000;

export interface StatusData {
  sessions: SessionSnapshot[];
  backends: BackendSnapshot[];
  /** Absent from older servers, null without a session cache. */
  tls_session_cache?: TlsSessionCacheSnapshot | null;
}


/** Test seams; the CLI passes none. */
export interface StatusIo {
  out?: Out;
  err?: Out;
  /** Stops --watch (the CLI stops on SIGINT). */
  signal?: AbortSignal;
  /** Line width to cut rows at; defaults to the terminal's. */
  columns?: number;
}

const USAGE = STATUS_USAGE;

interface StatusArgs {
  url: string;
  label: string;
  watch: number | null;
}

/** The address to reach a listener at: a wildcard bind (0.0.0.0, ::) is reached on loopback. */
function reachable(hp: HostPort): string {
  if (hp.host === '0.0.0.0') return `127.0.0.1:${hp.port}`;
  if (hp.host === '::') return `[::1]:${hp.port}`;
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** metrics.listen of the config FILE, as an address to connect to; a string is what is wrong. */
function metricsAddressOf(file: string): { addr: string } | string {
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (e) {
    // A ConfigError's message is one line naming the file and its problems.
    return e instanceof ConfigError ? e.message : `${file}: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (!config.metrics) return `${file} has no metrics section: Postern serves no /sessions with it (add metrics: { listen: 127.0.0.1:9325 })`;
  if (config.metrics.listen.port === 0) return `${file}: metrics.listen has port 0 (chosen at start-up): give --metrics HOST:PORT`;
  return { addr: reachable(config.metrics.listen) };
}

export function parseStatusArgs(argv: string[]): StatusArgs | string {
  let addr = DEFAULT_STATUS_ADDR;
  let addrGiven = false;
  let configFile: string | null = null;
  let watch: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (flag === '--metrics' || flag === '-m') {
      const v = inline ?? argv[++i];
      if (v === undefined) return '--metrics needs HOST:PORT';
      addr = v;
      addrGiven = true;
    } else if (flag === '--config' || flag === '-c') {
      const v = inline ?? argv[++i];
      if (v === undefined) return '--config needs a FILE';
      configFile = v;
    } else if (flag === '--watch' || flag === '-w') {
      // The interval is optional: take the next argument only when it is a number.
      let v = inline;
      if (v === undefined && argv[i + 1] !== undefined && /^\d+(\.\d+)?$/.test(argv[i + 1]!)) v = argv[++i];
      const n = v === undefined ? 2 : Number(v);
      if (!Number.isFinite(n) || n < 0.1 || n > 86_400) return `--watch: bad interval ${String(v)}`;
      watch = n;
    } else {
      return `unknown argument ${a}`;
    }
  }
  if (configFile !== null) {
    if (addrGiven) return 'give --metrics or --config, not both';
    const found = metricsAddressOf(configFile);
    if (typeof found === 'string') return found;
    addr = found.addr;
  }
  const base = baseUrl(addr);
  if (!base) return `--metrics: bad address ${addr} (want HOST:PORT, [IPv6]:PORT or http://HOST:PORT)`;
  return { url: `${base}/sessions`, label: addr, watch };
}

/** `HOST:PORT`, `[v6]:PORT`, `:PORT`, `PORT` or an http URL -> base URL without a trailing slash. */
function baseUrl(addr: string): string | null {
  if (/^https?:\/\//.test(addr)) {
    try {
      const u = new URL(addr);
      return `${u.protocol}//${u.host}`;
    } catch {
      return null;
    }
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(addr) ?? /^()()(\d{1,5})$/.exec(addr);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  const host = m[1] !== undefined && m[1] !== '' ? `[${m[1]}]` : m[2] || '127.0.0.1';
  return `http://${host}:${port}`;
}

export async function fetchStatus(url: string): Promise<StatusData> {
  const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  const body = (await res.json()) as unknown;
  if (typeof body !== 'object' || body === null) throw new Error(`${url}: not a Postern /sessions reply`);
  const { sessions, backends, tls_session_cache } = body as Partial<StatusData>;
  if (!Array.isArray(sessions) || !Array.isArray(backends)) throw new Error(`${url}: not a Postern /sessions reply`);
  return { sessions, backends, tls_session_cache: typeof tls_session_cache === 'object' ? tls_session_cache : null };
}

export async function statusMain(argv: string[], io: StatusIo = {}): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  const args = parseStatusArgs(argv);
  if (typeof args === 'string') {
    err.write(`postern status: ${args}\n${USAGE}`);
    return 1;
  }
  const columns = (): number | undefined => io.columns ?? (process.stdout.isTTY ? process.stdout.columns : undefined);
  let first: StatusData;
  try {
    first = await fetchStatus(args.url);
  } catch (e) {
    err.write(`postern status: cannot read ${args.url}: ${reason(e)}\n(is Postern running with metrics.listen set to ${args.label}?)\n`);
    return 1;
  }
  const reader = watchReader(out);
  const ended = (): number => {
    const e = reader.failed();
    if (e) err.write(`postern status: cannot write the output: ${(e as NodeJS.ErrnoException).code ?? e.message}\n`);
    return e ? 1 : 0;
  };
  if (args.watch === null) {
    out.write(renderStatus(first, { source: args.label, columns: columns() }));
    return ended();
  }
  // Watch: redraw until stopped (Ctrl-C, or the reader gone: `| head`); a failed refresh
  // shows the error and keeps trying.
  const ctl = new AbortController();
  const onSigint = () => ctl.abort();
  if (!io.signal) process.once('SIGINT', onSigint);
  const signal = AbortSignal.any([io.signal ?? ctl.signal, reader.gone]);
  let frame = renderStatus(first, { source: args.label, columns: columns() });
  try {
    while (!signal.aborted) {
      out.write(`\x1b[H\x1b[2J${frame}\nevery ${args.watch}s; Ctrl-C to stop\n`);
      await sleep(args.watch * 1000, signal);
      if (signal.aborted) break;
      try {
        frame = renderStatus(await fetchStatus(args.url), { source: args.label, columns: columns() });
      } catch (e) {
        frame = `postern status: ${args.label}: ${reason(e)} (${clock(new Date())})\n`;
      }
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
  return ended();
}

function reason(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message;
    return e.name === 'TimeoutError' ? `no answer within ${FETCH_TIMEOUT_MS} ms` : e.message;
  }
  return String(e);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

// ---- rendering ---------------------------------------------------------------------------

export function renderStatus(d: StatusData, opts: { source?: string; columns?: number; now?: Date } = {}): string {
  const up = d.backends.filter((b) => b.up === true).length;
  // Sessions still in their greet wait (screening: the 220 not yet out).
  const screening = d.sessions.filter((s) => s.state === 'screening').length;
  const lines: string[] = [];
  lines.push(
    `postern status${opts.source ? ` from ${opts.source}` : ''} at ${clock(opts.now ?? new Date())}: ` +
      `${d.sessions.length} session${d.sessions.length === 1 ? '' : 's'}${screening > 0 ? ` (${screening} in screening)` : ''}, ${up}/${d.backends.length} backends up`,
  );
  const cache = d.tls_session_cache;
  if (cache) lines.push(sessionCacheLine(cache));
  lines.push('');
  const state = (b: BackendSnapshot) => (b.up === null ? 'unknown' : b.up ? 'up' : 'DOWN');
  // With named pools (routing), backends are grouped by pool.
  const pooled = d.backends.some((b) => b.pool !== undefined && b.pool !== 'default');
  lines.push(
    ...(pooled
      ? table(
          ['POOL', 'BACKEND', 'STATE', 'ACTIVE', 'REASON'],
          [...d.backends]
            .sort((a, b) => (a.pool ?? '').localeCompare(b.pool ?? ''))
            .map((b) => [b.pool ?? '-', b.address, state(b), String(b.active), b.reason]),
        )
      : table(
          ['BACKEND', 'STATE', 'ACTIVE', 'REASON'],
          d.backends.map((b) => [b.address, state(b), String(b.active), b.reason]),
        )),
  );
  lines.push('');
  const sessions = [...d.sessions].sort((a, b) => b.age_ms - a.age_ms);
  if (sessions.length === 0) lines.push('no live sessions');
  else
    lines.push(
      ...table(
        ['CONN', 'CLIENT', 'LISTENER', 'STATE', 'HELO', 'USER', 'TLS', 'BACKEND', 'AGE', 'IN', 'OUT'],
        sessions.map((s) => [
          s.conn,
          hostPort(s.client.address, s.client.port),
          s.listener,
          s.state,
          s.helo ?? '-',
          // Older servers send no auth field.
          s.auth?.user ?? '-',
          s.tls ? `${s.tls.cipher}${s.tls.resumed ? '*' : ''}` : '-',
          s.backend ?? '-',
          duration(s.age_ms),
          bytes(s.bytes_in),
          bytes(s.bytes_out),
        ]),
        new Set([8, 9, 10]),
      ),
    );
  const cut = opts.columns;
  return lines.map((l) => (cut && l.length > cut ? l.slice(0, cut - 1) + '…' : l)).join('\n') + '\n';
}

/** The host's TLS session-ID cache in one line: size, hits (from Redis), misses, Redis's state. */
export function sessionCacheLine(c: TlsSessionCacheSnapshot): string {
  const n = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : 0);
  const lookups = n(c.hits) + n(c.misses);
  const share = lookups > 0 ? ` (${((100 * n(c.hits)) / lookups).toFixed(1)} % hits)` : '';
  const redis = c.redis === 'up' ? ', Redis up' : c.redis === 'down' ? ', Redis DOWN: this host only' : '';
  const fromRedis = c.redis !== null ? ` (${n(c.redis_hits)} from Redis)` : '';
  return `TLS session cache: ${n(c.sessions)}/${n(c.capacity)} sessions, ${n(c.hits)} hits${fromRedis}, ${n(c.misses)} misses${share}${redis}`;
}

/** Left-aligned columns, right-aligned where `right` says (numbers). */
function table(head: string[], rows: string[][], right = new Set<number>()): string[] {
  const clean = rows.map((r) => r.map(printable));
  const width = head.map((h, i) => Math.max(h.length, ...clean.map((r) => r[i]!.length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (right.has(i) ? c.padStart(width[i]!) : c.padEnd(width[i]!)))
      .join('  ')
      .trimEnd();
  return [fmt(head), ...clean.map(fmt)];
}

// Client-supplied text (HELO) must not move the cursor or break the table.
const printable = (s: string): string => s.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');

const hostPort = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);

export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s < 10 ? `${(ms / 1000).toFixed(1)}s` : `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n}B`;
  const units = ['K', 'M', 'G', 'T'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${units[u]}`;
}

const clock = (d: Date) => d.toISOString().replace('T', ' ').slice(0, 19) + 'Z';
