// The metrics listener (`metrics.listen`): Prometheus text, liveness, readiness and
// the live sessions as JSON. GET only; request bodies are never read.

import http from 'node:http';
import type { Metrics } from './metrics.js';
import type { SessionRecord } from './records.js';

export interface SessionSnapshot {
  conn: string;
  client: { address: string; port: number };
  listener: string;
  tls: { version: string; cipher: string; resumed: boolean; sni: string | null } | null;
  backend: string | null;
  state: string;
  helo: string | null;
  /** Who logged in (SMTP AUTH, or LOGIN from a trusted XCLIENT), or null. */
  auth: { user: string; mechanism: string } | null;
  age_ms: number;
  bytes_in: number;
  bytes_out: number;
}

export interface BackendSnapshot {
  address: string;
  /** The pool the server is listed in (routing); a server in two pools is listed twice. */
  pool?: string;
  /** null until the first health check has finished. */
  up: boolean | null;
  reason: string;
  active: number;
}

/** The host's TLS session-ID cache (tls.session_cache), as /sessions shows it. */
export interface TlsSessionCacheSnapshot {
  /** Sessions held now, of `capacity` at most. */
  sessions: number;
  capacity: number;
  /** Lookups answered; `redis_hits` of them only Redis knew. */
  hits: number;
  redis_hits: number;
  misses: number;
  stored: number;
  /** Redis behind the cache: 'up', 'down' (this host's cache answers alone), or null without state.redis. */
  redis: 'up' | 'down' | null;
}

/** What /metrics needs: a Metrics instance, or a cluster's aggregated registry. */
export interface MetricsSource {
  registry: { metrics(): Promise<string>; readonly contentType: string };
}

export interface StatusSources {
  metrics: MetricsSource;
  sessions(): SessionSnapshot[];
  backends(): BackendSnapshot[];
  ready(): boolean;
  /** Why the process is not ready; by default derived from backends(). */
  unreadyReason?(): string;
  /** More lines for /readyz's body, e.g. whether shared state (Redis) is reachable. */
  details?(): string[];
  /** The host's TLS session cache, or null when there is none. */
  tlsSessionCache?(): TlsSessionCacheSnapshot | null;
}

export interface StatusServer {
  address(): { host: string; port: number };
  /** The listening socket's descriptor, to hand to a successor (SIGUSR2); null off Unix. */
  fd(): number | null;
  close(): Promise<void>;
}

/** The shape of the running proxy the sources are read from (structural, so observe/ imports no server code). */
export interface LiveProxy {
  metrics: Metrics;
  sessions: Iterable<{ readonly started: number; readonly state: string; record(): SessionRecord }>;
  pool: {
    servers: readonly { key: string; up: boolean | null; reason: string; active: number }[];
    anyUp(): boolean;
  };
  /** Every named pool (routing), for backends grouped by pool; `pool` alone when absent. */
  pools?: { readonly pools: ReadonlyMap<string, { servers: readonly { key: string; up: boolean | null; reason: string; active: number }[] }> };
  /** Bound listener addresses; none while starting or draining. */
  addresses(): Record<string, unknown>;
}

/** StatusSources for a running Postern: ready = listeners bound and at least one backend usable. */
export function proxySources(p: LiveProxy): StatusSources {
  return {
    metrics: p.metrics,
    sessions: () => [...p.sessions].map((s) => sessionSnapshot(s.record(), s.state, s.started)),
    backends: () =>
      p.pools
        ? [...p.pools.pools].flatMap(([pool, x]) => x.servers.map((s) => ({ address: s.key, pool, up: s.up, reason: s.reason, active: s.active })))
        : p.pool.servers.map((s) => ({ address: s.key, up: s.up, reason: s.reason, active: s.active })),
    ready: () => Object.keys(p.addresses()).length > 0 && p.pool.anyUp(),
    unreadyReason: () => {
      if (Object.keys(p.addresses()).length === 0) return 'no listener bound';
      return backendsDown(p.pool.servers.map((s) => ({ address: s.key, up: s.up, reason: s.reason, active: s.active })));
    },
  };
}

/** A live session from its session record. */
export function sessionSnapshot(rec: SessionRecord, state: string, started: number, now = Date.now()): SessionSnapshot {
  return {
    conn: rec.conn,
    client: { address: rec.client.address, port: rec.client.port },
    listener: rec.listener,
    tls: rec.tls ? { version: rec.tls.version, cipher: rec.tls.cipher, resumed: rec.tls.resumed, sni: rec.tls.sni } : null,
    backend: rec.backend?.address ?? null,
    state,
    helo: rec.helo,
    auth: rec.auth ? { user: rec.auth.user, mechanism: rec.auth.mechanism } : null,
    age_ms: Math.max(0, now - started),
    bytes_in: rec.bytes_in,
    bytes_out: rec.bytes_out,
  };
}

function backendsDown(bs: BackendSnapshot[]): string {
  if (bs.length === 0) return 'no backend configured';
  if (bs.every((b) => b.up === false)) return `no backend up: ${bs.map((b) => `${b.address} (${b.reason})`).join('; ')}`;
  return 'no usable backend (all down or draining)';
}

// Loopback admin port: a handful of scrapers and operators, never a crowd.
const MAX_CONNECTIONS = 128;
/** How long close() lets requests under way finish. */
const CLOSE_GRACE_MS = 1000;

/**
 * Serves `src` on `listen`, or on `fd`, a socket already bound to it (handed over by the
 * process this one takes over from, or by systemd).
 */
export function startStatusServer(listen: { host: string; port: number }, src: StatusSources, fd: number | null = null): Promise<StatusServer> {
  const server = http.createServer({ maxHeaderSize: 8192 }, (req, res) => {
    handle(req, res, src).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `error: ${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    });
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5000;
  // Malformed request lines, oversized headers, timeouts: answer if the socket still can, never throw.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    // Swallow what the client still sends: closing with unread input would reset the connection and lose the answer.
    socket.on('data', () => undefined);
    socket.resume();
    setTimeout(() => socket.destroy(), 2000).unref();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(fd === null ? { port: listen.port, host: listen.host } : { fd }, () => {
      server.off('error', reject);
      server.on('error', () => undefined);
      resolve({
        address() {
          const a = server.address();
          if (a === null || typeof a === 'string') return { host: listen.host, port: listen.port };
          return { host: a.address, port: a.port };
        },
        fd() {
          // Node has no public accessor; `_handle.fd` is the descriptor libuv listens on.
          const n = (server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
          return typeof n === 'number' && n >= 0 ? n : null;
        },
        // Requests under way are answered (a scrape during an upgrade must not fail); idle
        // keep-alive connections go at once, anything still open after a second is cut.
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeIdleConnections();
            setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS).unref();
          }),
      });
    });
  });
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, src: StatusSources): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  // HEAD is GET without a body (RFC 9110 §9.3.2); anything else may carry a body we won't read.
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    res.setHeader('Connection', 'close');
    send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  switch (path) {
    case '/metrics': {
      const text = await src.metrics.registry.metrics();
      send(res, 200, src.metrics.registry.contentType, text);
      return;
    }
    case '/healthz':
      send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
      return;
    case '/readyz': {
      const more = (src.details?.() ?? []).map((d) => `${d}\n`).join('');
      if (src.ready()) send(res, 200, 'text/plain; charset=utf-8', `ready\n${more}`);
      else send(res, 503, 'text/plain; charset=utf-8', `not ready: ${src.unreadyReason?.() ?? backendsDown(src.backends())}\n${more}`);
      return;
    }
    case '/sessions':
      const cache = src.tlsSessionCache ? { tls_session_cache: src.tlsSessionCache() } : {};
      send(res, 200, 'application/json', JSON.stringify({ sessions: src.sessions(), backends: src.backends(), ...cache }) + '\n');
      return;
    default:
      send(res, 404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz, /readyz, /sessions\n');
  }
}

function send(res: http.ServerResponse, code: number, type: string, body: string): void {
  res.writeHead(code, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}
