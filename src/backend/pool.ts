// The configured backend servers, their health and load, and which of them a session
// should try. Active checks run every `interval`; failures in real sessions count too.

import type { BackendsConfig, HostPort, ServerConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
import { observeHealthCheck } from '../observe/record-metrics.js';
import { backendStateRecord } from '../observe/records.js';
import { capSize, lowerLimits, parseLimits, type Capabilities, type Limits } from '../smtp/ehlo.js';
import { order, type Balanced } from './balancer.js';
import { GreetedPool } from './greeted-pool.js';
import type { BackendTlsPolicy } from './starttls.js';
import { BackendTls } from '../tls/index.js';
import { BackendError } from './errors.js';
import { checkServer } from './health.js';

export class ServerState implements Balanced {
  readonly key: string;
  readonly weight: number;
  active = 0;
  current = 0;
  /** null until the first check has finished. */
  up: boolean | null = null;
  reason = 'not checked yet';
  caps: Capabilities | null = null;
  okStreak = 0;
  failStreak = 0;
  /** Pre-greeted connections (backends.pool), or null. */
  greeted: GreetedPool | null = null;

  constructor(readonly cfg: ServerConfig) {
    this.key = cfg.address.text;
    this.weight = cfg.weight;
  }
}

/**
 * Extensions Postern offers clients when every live server (or the bound one) offers them:
 * their commands and parameters pass through unchanged. (BINARYMIME would too, but needs
 * BODY=BINARYMIME checked against DATA, RFC 3030 §3; it is not offered.)
 */
export const PASSED_THROUGH = ['8BITMIME', 'SMTPUTF8', 'DSN', 'ENHANCEDSTATUSCODES', 'CHUNKING'] as const;

export interface Offered {
  extensions: Set<string>;
  /** Smallest SIZE a live server announces; null when none announces one. */
  size: number | null;
  /** LIMITS lowered to the smallest any live server announces. */
  limits: Limits;
}

export class BackendPool {
  readonly servers: ServerState[];
  /** STARTTLS to the backends, with one client session cache for them all. */
  readonly tlsPolicy: BackendTlsPolicy;
  #timer: NodeJS.Timeout | null = null;
  #checking = new Set<ServerState>();
  #stopped = false;

  constructor(
    readonly cfg: BackendsConfig,
    private readonly opts: { hostname: string; logger: Logger; metrics: Metrics },
  ) {
    this.servers = cfg.servers.map((s) => new ServerState(s));
    const t = cfg.tls;
    this.tlsPolicy = { mode: t.starttls, client: t.starttls === 'off' ? null : new BackendTls({ verify: t.verify, servername: t.servername, ca: t.ca }) };
  }

  /** Whether connections back from a session are kept for the next (identity none only). */
  get reuses(): boolean {
    return this.cfg.identity === 'none' && this.cfg.pool.reuse > 1;
  }

  /**
   * Ready connections only where no client identity has to go first (no PROXY header):
   * pre-greeted ones (`pool.idle`), and with identity none those back from a session.
   */
  #startGreeted(): void {
    const { idle, max_age, keepalive } = this.cfg.pool;
    if (this.cfg.identity !== 'xclient' && this.cfg.identity !== 'none') return;
    if (idle <= 0 && !this.reuses) return;
    for (const s of this.servers) {
      s.greeted = new GreetedPool(
        s.cfg.address,
        {
          idle,
          maxAge: max_age,
          keepalive,
          hostname: this.opts.hostname,
          connectTimeout: this.cfg.connect_timeout,
          replyTimeout: this.cfg.reply_timeout,
          tls: this.tlsPolicy,
        },
        () => s.up === true && !s.cfg.drain,
      );
    }
  }

  /** Runs the first round of checks (so the first EHLO offers the right extensions), then keeps checking. */
  async start(): Promise<void> {
    await Promise.all(this.servers.map((s) => this.#check(s)));
    this.#startGreeted();
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    for (const s of this.servers) s.greeted?.close();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      for (const s of this.servers) void this.#check(s);
      this.#schedule();
    }, this.cfg.health_check.interval);
    this.#timer.unref();
  }

  async #check(s: ServerState): Promise<void> {
    if (this.#checking.has(s) || this.#stopped) return;
    this.#checking.add(s);
    try {
      const caps = await checkServer(s.cfg.address, {
        identity: this.cfg.identity,
        hostname: this.opts.hostname,
        timeout: this.cfg.health_check.timeout,
      });
      if (this.cfg.tls.starttls === 'required' && !caps.has('STARTTLS')) {
        throw new BackendError('BACKEND_NO_STARTTLS', 'STARTTLS not offered (backends.tls.starttls: required)');
      }
      s.caps = caps;
      observeHealthCheck(this.opts.metrics, s.key, 'ok');
      this.#success(s, 'health check passed');
    } catch (err) {
      observeHealthCheck(this.opts.metrics, s.key, 'failed');
      this.#failure(s, err as Error, 'health check');
    } finally {
      this.#checking.delete(s);
    }
  }

  /** Usable servers in the order a session should try them. */
  candidates(clientKey: string): ServerState[] {
    const live = this.servers.filter((s) => s.up !== false && !s.cfg.drain);
    return order(this.cfg.strategy, live, clientKey);
  }

  /**
   * The server a verifier routed this session to (auth_http's Auth-Server/Auth-Port): the
   * configured one with that address, or one made for it (not health-checked, kept for
   * the next session routed there), as nginx's mail proxy goes where it is told.
   */
  routeTo(address: HostPort): ServerState {
    const text = address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
    const known = this.servers.find((s) => s.cfg.address.host === address.host && s.cfg.address.port === address.port);
    if (known) return known;
    let s = this.#routed.get(text);
    if (!s) {
      s = new ServerState({ address: { host: address.host, port: address.port, text }, weight: 1, drain: false });
      this.#routed.set(text, s);
    }
    return s;
  }

  /** Servers made by routeTo, by address. */
  readonly #routed = new Map<string, ServerState>();

  anyUp(): boolean {
    return this.servers.some((s) => s.up !== false && !s.cfg.drain);
  }

  acquire(s: ServerState): void {
    s.active++;
    this.opts.metrics.backendSessions.set({ backend: s.key }, s.active);
  }

  release(s: ServerState): void {
    s.active--;
    this.opts.metrics.backendSessions.set({ backend: s.key }, s.active);
  }

  /** A session's handshake with `s` worked. */
  reportSuccess(s: ServerState, caps: Capabilities): void {
    s.caps = caps;
    s.failStreak = 0;
    if (s.up === null) this.#setState(s, true, 'session handshake succeeded');
  }

  /** A session's connect or handshake with `s` failed (passive health detection). */
  reportFailure(s: ServerState, err: Error): void {
    this.#failure(s, err, 'session');
  }

  #success(s: ServerState, reason: string): void {
    s.failStreak = 0;
    s.okStreak++;
    if (s.up === null || (s.up === false && s.okStreak >= this.cfg.health_check.rise)) this.#setState(s, true, reason);
  }

  #failure(s: ServerState, err: Error, where: string): void {
    s.okStreak = 0;
    s.failStreak++;
    const reason = `${where}: ${err.message}`;
    const now = err instanceof BackendError && err.unusable;
    if (s.up !== false && (now || s.up === null || s.failStreak >= this.cfg.health_check.fall)) this.#setState(s, false, reason);
    else if (s.up === false) s.reason = reason;
  }

  #setState(s: ServerState, up: boolean, reason: string): void {
    s.up = up;
    s.reason = reason;
    if (up) s.greeted?.fill();
    this.opts.metrics.backendUp.set({ backend: s.key }, up ? 1 : 0);
    const rec = backendStateRecord(s.key, up, reason);
    if (up) this.opts.logger.info(rec, `backend ${s.key} up`);
    else this.opts.logger.warn(rec, `backend ${s.key} down`);
  }

  /** What Postern may offer clients: extensions every live server offers, the smallest SIZE. */
  offered(): Offered {
    const live = this.servers.filter((s) => s.up === true && s.caps);
    const extensions = new Set<string>();
    let limits: Limits = { mailmax: null, rcptmax: null, rcptdomainmax: null };
    if (live.length === 0) return { extensions, size: null, limits };
    for (const ext of PASSED_THROUGH) if (live.every((s) => s.caps!.has(ext))) extensions.add(ext);
    let size: number | null = null;
    for (const s of live) {
      const n = capSize(s.caps!);
      if (n !== null && (size === null || n < size)) size = n;
      limits = lowerLimits(limits, parseLimits(s.caps!));
    }
    return { extensions, size, limits };
  }
}
