// The running proxy: listeners, admission, backend pool, live sessions, drain and reload.

import type net from 'node:net';
import { CidrList } from '../config/cidr.js';
import type { Config, ListenerConfig } from '../config/types.js';
import { BackendPool } from '../backend/pool.js';
import { anomalyFilter } from '../observe/anomalies.js';
import { nextConnId } from '../observe/ids.js';
import type { Logger } from '../observe/logger.js';
import { Metrics } from '../observe/metrics.js';
import { anomalyRecord, sessionRecord } from '../observe/records.js';
import { Session } from '../session/session.js';
import { Admission, normalizeAddress, type AdmissionControl, type Refusal } from './admission.js';
import { TlsTerminator, type TlsInfo } from '../tls/index.js';
import { Listener } from './listener.js';
import { readProxyHeader, resolveClient } from './proxy-in.js';

/** Who a new connection is, once any PROXY header from a trusted balancer has been read. */
interface Arrival {
  client: { address: string; port: number };
  local: { address: string; port: number };
  /** The balancer that vouched for `client`, or null. */
  proxy: string | null;
  /** The peer may vouch for clients (trusted_proxies): XCLIENT is offered to it. */
  trusted: boolean;
  /** Bytes that came with the header. */
  initial: Buffer | null;
  /** Why a trusted peer's header failed, or null. */
  proxyFailure: string | null;
}

export interface PosternOptions {
  logger: Logger;
  metrics?: Metrics;
  /** Per-IP and total limits decided elsewhere (the cluster primary); local by default. */
  admission?: AdmissionControl;
}

export class Postern {
  #config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  #pool: BackendPool;
  readonly #admission: AdmissionControl;
  #listeners: Listener[] = [];
  readonly sessions = new Set<Session>();
  #draining = false;
  readonly #trusted = new WeakMap<ListenerConfig, CidrList>();
  #tls: TlsTerminator | null = null;

  constructor(config: Config, opts: PosternOptions) {
    this.#config = config;
    this.logger = opts.logger;
    this.metrics = opts.metrics ?? new Metrics({ processMetrics: true });
    this.#pool = this.#newPool(config);
    this.#admission = opts.admission ?? new Admission(config.limits);
  }

  get config(): Config {
    return this.#config;
  }

  get pool(): BackendPool {
    return this.#pool;
  }

  #newPool(config: Config): BackendPool {
    return new BackendPool(config.backends, { hostname: config.hostname, logger: this.logger, metrics: this.metrics });
  }

  /** Checks the backends once, then opens the listeners. Throws ListenError on a bind failure. */
  async start(): Promise<void> {
    if (this.#config.tls) this.#tls = await TlsTerminator.create(this.#config.tls, { logger: this.logger });
    await this.#pool.start();
    try {
      for (const cfg of this.#config.listeners) {
        const l = new Listener(cfg, (s, l) => this.#accept(s, l));
        await l.listen();
        this.#listeners.push(l);
        this.logger.info({ listener: cfg.name, address: l.address() }, `listening on ${cfg.listen.text}`);
      }
    } catch (err) {
      await this.#closeListeners();
      this.#pool.stop();
      this.#tls?.close();
      throw err;
    }
  }

  /** Bound addresses by listener name (tests use port 0). */
  addresses(): Record<string, { host: string; port: number }> {
    return Object.fromEntries(this.#listeners.map((l) => [l.cfg.name, l.address()]));
  }

  /** Peers allowed to vouch for clients on this listener (PROXY header or XCLIENT). */
  #trustedOn(cfg: ListenerConfig): CidrList {
    let list = this.#trusted.get(cfg);
    if (!list) this.#trusted.set(cfg, (list = new CidrList(cfg.trusted_proxies)));
    return list;
  }

  #accept(socket: net.Socket, listener: Listener): void {
    const peer = { address: normalizeAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
    const local = { address: normalizeAddress(socket.localAddress), port: socket.localPort ?? 0 };
    const id = nextConnId();
    const lcfg = listener.cfg;
    this.metrics.connectionsTotal.inc({ listener: lcfg.name });
    if (this.#draining) {
      socket.on('error', () => undefined);
      socket.end(`421 4.3.2 ${this.#config.hostname} Service shutting down\r\n`);
      return;
    }
    const trusted = this.#trustedOn(lcfg).contains(peer.address);
    if (lcfg.proxy_protocol !== 'on' || !trusted) {
      this.#admit(socket, listener, id, { client: peer, local, proxy: null, trusted, initial: null, proxyFailure: null });
      return;
    }
    // A trusted balancer MUST open with a header (the spec forbids guessing whether one comes).
    socket.on('error', () => undefined);
    readProxyHeader(socket, lcfg.proxy_protocol_timeout).then(
      ({ header, rest }) => {
        socket.removeAllListeners('error');
        const r = resolveClient(header, socket);
        this.#admit(socket, listener, id, {
          client: r.client,
          local: r.local,
          proxy: `${peer.address}:${peer.port}`,
          trusted,
          initial: rest.length ? rest : null,
          proxyFailure: null,
        });
      },
      (err: Error) => {
        socket.removeAllListeners('error');
        if (socket.destroyed) return;
        this.#admit(socket, listener, id, { client: peer, local, proxy: null, trusted, initial: null, proxyFailure: err.message });
      },
    );
  }

  #admit(
    socket: net.Socket,
    listener: Listener,
    id: string,
    who: Arrival,
  ): void {
    const cfg = this.#config;
    const name = listener.cfg.name;
    const { client } = who;
    if (cfg.backends.reject_when_down === 'connect' && !this.#pool.anyUp()) {
      // Every backend is down and the operator prefers clients to retry elsewhere now.
      socket.on('error', () => undefined);
      socket.end(`421 4.3.2 ${cfg.hostname} Service not available, try again later\r\n`);
      this.logger.info(sessionRecord({ conn: id, client, listener: name, proxy: who.proxy, duration_ms: 0, close: 'backend_failed' }), 'session');
      return;
    }
    // Limits count the real client, after PROXY resolution.
    const refused = this.#admission.admit(client.address);
    if (refused instanceof Promise) {
      socket.on('error', () => undefined);
      refused.then(
        (r) => {
          socket.removeAllListeners('error');
          if (socket.destroyed) {
            if (!r) this.#admission.release(client.address);
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

  #admitted(
    socket: net.Socket,
    listener: Listener,
    id: string,
    who: Arrival,
    refused: Refusal | null,
  ): void {
    const cfg = this.#config;
    const name = listener.cfg.name;
    const { client } = who;
    if (refused) {
      this.metrics.limitRejections.inc({ limit: refused.limit });
      socket.on('error', () => undefined);
      // A TLS client could not read a plaintext 421: it just sees the connection close.
      if (listener.cfg.tls === 'implicit') socket.destroy();
      else socket.end(`421 4.7.0 ${cfg.hostname} ${refused.text}\r\n`);
      this.logger.info(sessionRecord({ conn: id, client, listener: name, proxy: who.proxy, duration_ms: 0, close: 'limit', limit: refused.limit }), 'session');
      return;
    }
    if (listener.cfg.tls === 'implicit') {
      // Port 465 (RFC 8314): the handshake comes before the greeting. Bytes that came with
      // a PROXY header are the start of the client's ClientHello.
      const started = Date.now();
      this.#tls!.accept(socket, { timeoutMs: cfg.limits.timeouts.greeting, head: who.initial ?? undefined }).then(
        ({ socket: secure, info }) => {
          this.metrics.tlsHandshakes.inc({ listener: name, resumed: String(info.resumed) });
          this.#startSession(secure, listener, id, { ...who, initial: null }, info);
        },
        (err: Error & { reason?: string }) => {
          this.#admission.release(client.address);
          this.#tlsFailed(id, who, name, err.reason ?? err.message, Date.now() - started);
        },
      );
      return;
    }
    this.#startSession(socket, listener, id, who, null);
  }

  /** A client whose implicit-TLS handshake failed: the anomaly and its session record. */
  #tlsFailed(id: string, who: Arrival, listener: string, reason: string, ms: number): void {
    this.metrics.anomalies.inc({ kind: 'tls_handshake_failed' });
    if (anomalyFilter(this.#config.log.anomalies)('tls_handshake_failed')) {
      this.logger.info(anomalyRecord(id, 'tls_handshake_failed', reason), 'anomaly tls_handshake_failed');
    }
    this.logger.info(
      sessionRecord({ conn: id, client: who.client, listener, proxy: who.proxy, duration_ms: ms, close: 'error', anomalies: ['tls_handshake_failed'] }),
      'session',
    );
  }

  #startSession(
    socket: net.Socket,
    listener: Listener,
    id: string,
    who: Arrival,
    tls: TlsInfo | null,
  ): void {
    const cfg = this.#config;
    const name = listener.cfg.name;
    const { client } = who;
    this.metrics.connectionsActive.inc({ listener: name });
    let admitted = client.address;
    const session = new Session(socket, {
      tls,
      terminator: this.#tls,
      id,
      config: cfg,
      listener: listener.cfg,
      pool: this.#pool,
      logger: this.logger,
      metrics: this.metrics,
      logAnomaly: anomalyFilter(cfg.log.anomalies),
      client,
      local: who.local,
      proxy: who.proxy,
      trusted: who.trusted,
      initial: who.initial,
      proxyFailure: who.proxyFailure,
      readmit: (address) => {
        // XCLIENT from a trusted upstream named another client: count that one instead.
        this.#admission.release(admitted);
        const settle = (r: Refusal | null): string | null => {
          if (r) {
            this.metrics.limitRejections.inc({ limit: r.limit });
            this.#admission.force(admitted);
            return r.text;
          }
          admitted = address;
          return null;
        };
        const r = this.#admission.admit(address);
        return r instanceof Promise ? r.then(settle) : settle(r);
      },
      onEnd: (s) => {
        this.sessions.delete(s);
        this.#admission.release(admitted);
        this.metrics.connectionsActive.dec({ listener: name });
      },
    });
    this.sessions.add(session);
    session.start();
    socket.resume();
  }

  /**
   * SIGHUP: a new config for new sessions; running sessions keep what they have.
   * Listeners whose address changed are reopened.
   */
  async reload(next: Config): Promise<void> {
    const old = this.#config;
    // Certificates first: if they do not load, nothing changes (the error reaches the caller).
    if (next.tls && this.#tls) await this.#tls.reload(next.tls);
    else if (next.tls && !this.#tls) this.#tls = await TlsTerminator.create(next.tls, { logger: this.logger });
    this.#config = next;
    this.#admission.update(next.limits);
    if (JSON.stringify(old.backends) !== JSON.stringify(next.backends) || old.hostname !== next.hostname) {
      const pool = this.#newPool(next);
      await pool.start();
      this.#pool.stop();
      this.#pool = pool;
    }
    const keep: Listener[] = [];
    for (const l of this.#listeners) {
      const cfg = next.listeners.find((c) => c.name === l.cfg.name && c.listen.text === l.cfg.listen.text);
      if (cfg) {
        l.cfg = cfg;
        keep.push(l);
      } else await l.close();
    }
    for (const cfg of next.listeners) {
      if (keep.some((l) => l.cfg.name === cfg.name)) continue;
      const l = new Listener(cfg, (s, l) => this.#accept(s, l));
      await l.listen();
      keep.push(l);
    }
    this.#listeners = keep;
    this.logger.info({ event: 'reload' }, 'configuration reloaded');
  }

  /**
   * Stops accepting, lets sessions finish for up to `graceMs`, then tells the rest
   * `421 4.3.2` and closes them.
   */
  async stop(graceMs = this.#config.shutdown_grace): Promise<void> {
    this.#draining = true;
    await this.#closeListeners();
    this.#pool.stop();
    const deadline = Date.now() + graceMs;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, deadline - Date.now()))));
    }
    for (const s of this.sessions) s.shutdown();
    const hard = Date.now() + 2000;
    while (this.sessions.size > 0 && Date.now() < hard) await new Promise((r) => setTimeout(r, 20));
    this.#admission.close();
    this.#tls?.close();
  }

  async #closeListeners(): Promise<void> {
    const ls = this.#listeners;
    this.#listeners = [];
    // server.close() waits for open connections; sessions are drained separately.
    await Promise.all(ls.map((l) => Promise.race([l.close(), new Promise((r) => setTimeout(r, 0))])));
  }
}
