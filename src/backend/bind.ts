// Binding a client session to a backend server: pick servers in the balancer's order,
// hand each a connection through the handshake, fail over to the next on any fault before
// the client's command is forwarded, and keep the pool's books (active sessions, success
// and failure reports, reuse counts). The session holds the Binding that comes back and
// ends it one of three ways: unbind (QUIT), park (kept for the next session) or abort.

import type { BackendsConfig, HostPort } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { BackendAttempt } from '../observe/records.js';
import { isRefusal } from '../smtp/codes.js';
import { capSize, parseLimits, type Capabilities, type Limits } from '../smtp/ehlo.js';
import type { Reply } from '../smtp/reply.js';
import type { BackendConnection, RelayHandlers } from './connection.js';
import { ProxyProtocolError } from '../proxy/index.js';
import { BackendError } from './errors.js';
import { handshake, type BackendClient, type HandshakeProgress } from './handshake.js';
import type { BackendPool, ServerState } from './pool.js';

export interface BindRequest {
  pool: BackendPool;
  cfg: BackendsConfig;
  /** Our name for EHLO when the client gave none. */
  hostname: string;
  client: BackendClient;
  /** What the balancer hashes (client-hash): the client's address. */
  clientKey: string;
  /** The one server to use (a verifier routed the session there), or null for the balancer's choice. */
  route?: HostPort | null;
  logger: Logger;
  connId: string;
  /** The session ended while binding: stop, and leave nothing open. */
  cancelled: () => boolean;
  /** Each server that failed is added here (the session record's backend.attempts). */
  failed?: (attempt: BackendAttempt) => void;
}

/** SIZE and LIMITS of a capabilities map: a server's parse is shared by its sessions (backend/dialog.ts). */
const derived = new WeakMap<Capabilities, { size: number | null; limits: Limits }>();

/**
 * A session's hold on one backend connection. Ends exactly once: `unbind` (QUIT), `park`
 * (identity none: kept for the next session) or `abort`
 * (the backend sees a drop and forgets any open transaction).
 */
export class Binding {
  caps!: Capabilities;
  /** SIZE and LIMITS from `caps`, derived once per EHLO rather than per RCPT or body chunk. */
  size: number | null = null;
  limits!: Limits;
  /** Sessions the connection carried before this one (backends.pool.reuse). */
  readonly reused: number;
  #clean = true;
  #ended = false;

  constructor(
    readonly conn: BackendConnection,
    readonly server: ServerState,
    caps: Capabilities,
    /** The pool the server was taken from (routing: the session's pool for this binding). */
    readonly pool: BackendPool,
  ) {
    this.setCaps(caps);
    this.reused = conn.sessions++;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** After an EHLO on the bound connection. */
  setCaps(caps: Capabilities): void {
    this.caps = caps;
    let d = derived.get(caps);
    if (!d) derived.set(caps, (d = { size: capSize(caps), limits: parseLimits(caps) }));
    this.size = d.size;
    this.limits = d.limits;
  }

  /** Relay mode: every reply (noted for reuse) and the connection's end go to `handlers`. */
  relay(handlers: RelayHandlers): void {
    this.conn.relay({
      onReply: (r: Reply) => {
        // Postfix counts refusals per connection (smtpd_soft/hard_error_limit, then it
        // slows down and hangs up): a connection that has seen one is not handed on.
        if (isRefusal(r.code)) this.#clean = false;
        handlers.onReply(r);
      },
      onClose: (err) => handlers.onClose(err),
    });
  }

  write(data: string | Buffer): boolean {
    return this.conn.write(data);
  }

  /**
   * Whether the connection can serve another session once this one ends cleanly
   * (backends.pool.reuse, identity none): no 4xx/5xx seen, under the reuse count, quiet,
   * and the backend's MAILMAX leaves room for `ownMailmax` more transactions.
   */
  reusable(reuse: number, ownMailmax: number | null): boolean {
    if (this.#ended || !this.pool.reuses || !this.server.greeted || !this.#clean) return false;
    if (this.conn.sessions >= reuse || !this.conn.idle) return false;
    // RFC 9422 §4.1: the backend's MAILMAX counts every transaction on the connection.
    const max = this.limits.mailmax;
    return max === null || this.conn.transactions + (ownMailmax ?? Infinity) <= max;
  }

  /** Ends politely: QUIT, and the backend closes after its 221. No transaction may be open. */
  unbind(): void {
    if (!this.#end()) return;
    this.conn.quit();
  }

  /** Hands the connection back for the next session, without QUIT (check `reusable` first). */
  park(): void {
    if (!this.#end()) return;
    this.conn.park();
    this.server.greeted!.give({ conn: this.conn, caps: this.caps, parked: null });
  }

  /** Drops the connection: the backend discards whatever transaction was open. */
  abort(): void {
    if (!this.#end()) return;
    this.conn.destroy();
  }

  #end(): boolean {
    if (this.#ended) return false;
    this.#ended = true;
    this.pool.release(this.server);
    return true;
  }
}

/** Tries each usable server in turn; null when none would take the session (logged as bind_failed). */
export async function bind(req: BindRequest): Promise<Binding | null> {
  const { pool, cfg, client } = req;
  const tried: string[] = [];
  for (const server of req.route ? [pool.routeTo(req.route)] : pool.candidates(req.clientKey)) {
    if (req.cancelled()) return null;
    tried.push(server.key);
    pool.acquire(server);
    const progress: HandshakeProgress = { stage: 'connect' };
    try {
      const b = await handshake(
        server.cfg.address,
        client,
        {
          identity: cfg.identity,
          hostname: req.hostname,
          connectTimeout: cfg.connect_timeout,
          replyTimeout: cfg.reply_timeout,
          tls: pool.tlsPolicy,
          known: server.caps,
          progress,
        },
        (await server.greeted?.acquire(client.helo ?? req.hostname)) ?? null,
      );
      // Gone between its last reply and now (a reused connection the backend just timed
      // out): the client's command has not been sent, so the next server can still have it.
      if (b.conn.closed) {
        progress.stage = 'ready';
        throw new BackendError('BACKEND_CLOSED', `${server.key} closed the connection before the session's first command`);
      }
      pool.reportSuccess(server, b.caps);
      if (req.cancelled()) {
        b.conn.quit();
        pool.release(server);
        return null;
      }
      return new Binding(b.conn, server, b.caps, pool);
    } catch (err) {
      pool.release(server);
      req.failed?.({ server: server.key, stage: err instanceof ProxyProtocolError ? 'proxy' : progress.stage, error: (err as Error).message });
      if (err instanceof ProxyProtocolError) {
        // Not the server's fault: a PROXY header cannot name this client. No other server
        // would do better, and none should be marked down for it.
        req.logger.warn({ conn: req.connId, backend: server.key, err: err.message }, 'cannot bind this client');
        break;
      }
      if (err instanceof BackendError) pool.reportFailure(server, err);
      // Anything else is ours, not the server's: logged loudly, and the next server tried.
      else req.logger.error({ conn: req.connId, backend: server.key, err: (err as Error).stack }, 'unexpected error binding a backend');
      req.logger.warn(
        { conn: req.connId, backend: server.key, err: (err as Error).message, code: err instanceof BackendError ? err.code : undefined },
        'backend handshake failed',
      );
    }
  }
  req.logger.warn({ event: 'bind_failed', conn: req.connId, tried }, tried.length ? 'every backend failed' : 'no backend is up');
  return null;
}
