// The accept pipeline, from a listener's new socket to a running session:
//   accept (drain check, PROXY header from a trusted balancer)
//   -> admit (every backend down?, admission: total, per-IP connections and rate)
//   -> admitted (refusal, or the implicit-TLS handshake)
//   -> startSession.
// Connections refused on the way get their session record here (observe/records.ts).

import type { Authenticator } from '../auth/index.js';
import type net from 'node:net';
import { CidrList } from '../config/cidr.js';
import type { Config, ListenerConfig } from '../config/types.js';
import type { BackendPool } from '../backend/pool.js';
import type { SessionRouting } from '../session/context.js';
import { anomalyFilter } from '../observe/anomalies.js';
import { nextConnId } from '../observe/ids.js';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
import type { Endpoint } from '../observe/records.js';
import * as R from '../session/replies.js';
import type { Screener } from '../screen/screener.js';
import type { DecisionPoints } from '../session/decision.js';
import { refuseSession, type RefusedSession } from '../session/refused.js';
import { Session } from '../session/session.js';
import { AcmeChallengeAnswered, type TlsInfo, type TlsTerminator } from '../tls/index.js';
import { unmapIPv4 } from '../net/ip.js';
import { type AdmissionControl, type Refusal } from './admission.js';
import type { Listener } from './listener.js';
import type { LiveSessions } from './live-sessions.js';
import { ProxyInError, readProxyHeader, resolveClient } from './proxy-in.js';

/** Who a new connection is, once any PROXY header from a trusted balancer has been read. */
export interface Arrival {
  client: Endpoint;
  local: Endpoint;
  /** The balancer that vouched for `client`, or null. */
  proxy: string | null;
  /** Bytes that came with the header. */
  initial: Buffer | null;
  /** Why a trusted peer's header failed, or null. */
  proxyFailure: string | null;
  /** When the connection was accepted (ms since the epoch). */
  started: number;
}

/** What the pipeline reads from the running proxy; config, pool and TLS change on reload. */
export interface AcceptContext {
  readonly config: Config;
  readonly pool: BackendPool;
  readonly routing?: SessionRouting | null;
  readonly tls: TlsTerminator | null;
  /** Stopping: new connections get 421 and are closed. */
  readonly draining: boolean;
  readonly admission: AdmissionControl;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly sessions: LiveSessions<Session>;
  /** SMTP AUTH (the `auth:` section), or null. */
  readonly authenticator: Authenticator | null;
  /** The decision seam's plug-ins (screening, routing), or null. */
  readonly decisions: DecisionPoints | null;
  /** Screening for listeners with `screen: on`. */
  readonly screener?: Screener | null;
}

export class AcceptPipeline {
  /** Per listener config: peers that may send a PROXY header, clients that may send XCLIENT. */
  readonly #grants = new WeakMap<ListenerConfig, { proxy: CidrList; xclient: CidrList }>();

  /**
   * Connections accepted whose session has not started yet (waiting for a PROXY header, the
   * cluster's admission, a TLS handshake): a stop waits for them as for sessions, or an
   * upgrade's old process exits under them and their clients see a close with no greeting.
   */
  readonly #arriving = new Set<string>();

  constructor(private readonly ctx: AcceptContext) {}

  get arriving(): number {
    return this.#arriving.size;
  }

  // Two separate grants, as Postfix (smtpd_upstream_proxy_protocol vs
  // smtpd_authorized_xclient_hosts) and Exim (hosts_proxy vs hosts_xclient) keep them: a
  // balancer trusted for its PROXY header relays its clients' bytes, and those clients must
  // never inherit its trust.
  #grantsOn(cfg: ListenerConfig): { proxy: CidrList; xclient: CidrList } {
    let g = this.#grants.get(cfg);
    if (!g) this.#grants.set(cfg, (g = { proxy: new CidrList(cfg.trusted_proxies), xclient: new CidrList(cfg.xclient_from) }));
    return g;
  }

  accept(socket: net.Socket, listener: Listener): void {
    const peer: Endpoint = { address: unmapIPv4(socket.remoteAddress), port: socket.remotePort ?? 0 };
    const fixed = listener.localEndpoint();
    const local: Endpoint = fixed ? { address: fixed.address, port: fixed.port } : { address: unmapIPv4(socket.localAddress), port: socket.localPort ?? 0 };
    const id = nextConnId();
    const started = Date.now();
    const lcfg = listener.cfg;
    this.#arriving.add(id);
    socket.once('close', () => this.#arriving.delete(id));
    this.ctx.metrics.connectionsTotal.inc({ listener: lcfg.name });
    if (this.ctx.draining) {
      const reply = lcfg.tls === 'implicit' ? null : R.shuttingDown(this.ctx.config.hostname);
      this.#refuse(socket, { conn: id, client: peer, listener: lcfg.name, proxy: null, started, close: 'shutdown' }, reply);
      return;
    }
    if (lcfg.proxy_protocol !== 'on' || !this.#grantsOn(lcfg).proxy.contains(peer.address)) {
      this.#admit(socket, listener, id, { client: peer, local, proxy: null, initial: null, proxyFailure: null, started });
      return;
    }
    // A trusted balancer MUST open with a header (the spec forbids guessing whether one comes).
    // The quiet listener stays once the session has its own: removing it would turn the
    // socket's listener table into a dictionary (a V8 map change per connection, issue 26).
    socket.on('error', ignoreError);
    readProxyHeader(socket, lcfg.proxy_protocol_timeout).then(
      ({ header, rest }) => {
        const r = resolveClient(header, socket, { client: peer, local });
        this.#admit(socket, listener, id, {
          client: r.client,
          local: r.local,
          proxy: `${peer.address}:${peer.port}`,
          initial: rest.length ? rest : null,
          proxyFailure: null,
          started,
        });
      },
      (err: Error) => {
        if (socket.destroyed || (err instanceof ProxyInError && err.code === 'PROXY_CLOSED' && err.received.length === 0)) {
          // The balancer closed before its header (a TCP health check does): a session all
          // the same, with nothing to name.
          this.#refuse(socket, { conn: id, client: peer, listener: lcfg.name, proxy: null, started, close: 'client_closed' }, null);
          return;
        }
        this.#admit(socket, listener, id, { client: peer, local, proxy: null, initial: null, proxyFailure: err.message, started });
      },
    );
  }

  #admit(socket: net.Socket, listener: Listener, id: string, who: Arrival): void {
    const { config: cfg, admission } = this.ctx;
    const name = listener.cfg.name;
    const { client } = who;
    if (cfg.backends.reject_when_down === 'connect' && !this.ctx.pool.anyUp()) {
      // Every backend is down and the operator prefers clients to retry elsewhere now.
      const reply = listener.cfg.tls === 'implicit' ? null : R.serviceUnavailable(cfg.hostname);
      this.#refuse(socket, { conn: id, client, listener: name, proxy: who.proxy, started: who.started, close: 'backend_failed' }, reply);
      return;
    }
    // Limits count the real client, after PROXY resolution.
    const refused = admission.admit(client.address);
    if (refused instanceof Promise) {
      socket.on('error', ignoreError);
      refused.then(
        (r) => {
          if (socket.destroyed) {
            if (!r) admission.release(client.address);
            return;
          }
          this.#admitted(socket, listener, id, who, r);
        },
        () => socket.destroy(),
      );
      return;
    }
    this.#admitted(socket, listener, id, who, refused);
  }

  #admitted(socket: net.Socket, listener: Listener, id: string, who: Arrival, refused: Refusal | null): void {
    const { config: cfg, metrics } = this.ctx;
    const name = listener.cfg.name;
    const { client } = who;
    if (refused) {
      metrics.limitRejections.inc({ limit: refused.limit });
      // A TLS client could not read a plaintext 421: it just sees the connection close.
      const reply = listener.cfg.tls === 'implicit' ? null : R.refusedClient(cfg.hostname, refused.text);
      this.#refuse(socket, { conn: id, client, listener: name, proxy: who.proxy, started: who.started, close: 'limit', limit: refused.limit }, reply);
      return;
    }
    if (listener.cfg.tls === 'implicit') {
      // Port 465 (RFC 8314): the handshake comes before the greeting. Bytes that came with
      // a PROXY header are the start of the client's ClientHello.
      this.ctx.tls!.accept(socket, { timeoutMs: cfg.limits.timeouts.tls_handshake, head: who.initial ?? undefined }).then(
        ({ socket: secure, info }) => {
          metrics.tlsHandshakes.inc({ listener: name, resumed: String(info.resumed) });
          this.#startSession(secure, listener, id, { ...who, initial: null }, info);
        },
        (err: Error & { reason?: string }) => {
          this.ctx.admission.release(client.address);
          const base = { conn: id, client, listener: name, proxy: who.proxy, started: who.started };
          // An ACME validator's tls-alpn-01 probe, answered by the terminator: nothing to name.
          if (err instanceof AcmeChallengeAnswered) return this.#refuse(socket, { ...base, close: 'quit' }, null);
          const anomaly = { kind: 'tls_handshake_failed' as const, detail: err.reason ?? err.message };
          this.#refuse(socket, { ...base, close: 'error', anomaly }, null);
        },
      );
      return;
    }
    this.#startSession(socket, listener, id, who, null);
  }

  /** A connection refused before its session could start: a session record all the same. */
  #refuse(socket: net.Socket, r: RefusedSession, reply: string | null): void {
    this.#arriving.delete(r.conn);
    const { logger, metrics, config } = this.ctx;
    refuseSession({ logger, metrics, logAnomaly: anomalyFilter(config.log.anomalies) }, socket, r, reply);
  }

  #startSession(socket: net.Socket, listener: Listener, id: string, who: Arrival, tls: TlsInfo | null): void {
    this.#arriving.delete(id);
    const { config: cfg, metrics, admission } = this.ctx;
    const name = listener.cfg.name;
    const { client } = who;
    metrics.connectionsActive.inc({ listener: name });
    let admitted = client.address;
    const session = new Session(socket, {
      tls,
      terminator: this.ctx.tls,
      id,
      config: cfg,
      listener: listener.cfg,
      pool: this.ctx.pool,
      routing: this.ctx.routing,
      authenticator: this.ctx.authenticator,
      logger: this.ctx.logger,
      metrics,
      logAnomaly: anomalyFilter(cfg.log.anomalies),
      client,
      local: who.local,
      proxy: who.proxy,
      xclientFrom: this.#grantsOn(listener.cfg).xclient,
      initial: who.initial,
      proxyFailure: who.proxyFailure,
      decisions: this.ctx.decisions,
      screener: this.ctx.screener ?? null,
      readmit: (address) => {
        // XCLIENT from an xclient_from upstream named another client: count that one instead.
        admission.release(admitted);
        const settle = (r: Refusal | null): string | null => {
          if (r) {
            metrics.limitRejections.inc({ limit: r.limit });
            admission.force(admitted);
            return r.text;
          }
          admitted = address;
          return null;
        };
        const r = admission.admit(address);
        return r instanceof Promise ? r.then(settle) : settle(r);
      },
      onEnd: () => {
        live.remove();
        admission.release(admitted);
        metrics.connectionsActive.dec({ listener: name });
      },
    });
    const live = this.ctx.sessions.add(session);
    session.start();
    socket.resume();
  }
}

/** Errors while the connection waits for its header or its admission: the session that follows reports its own. */
const ignoreError = (): void => undefined;
