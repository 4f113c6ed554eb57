// The configured backend servers, their health and load, and which of them a session
// should try. Health is decided by a HealthMonitor: this pool's own (a single process), or
// the host's, whose states a cluster worker's pool follows (HealthFeed).

import type { BackendsConfig, HostPort } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { BoundSessions, Metrics } from '../observe/metrics.js';
import { capSize, lowerLimits, parseLimits, type Capabilities, type Limits } from '../smtp/ehlo.js';
import { order } from './balancer.js';
import { GreetedPool } from './greeted-pool.js';
import type { BackendTlsPolicy } from './starttls.js';
import { BackendTls } from '../tls/index.js';
import { BackendError } from './errors.js';
import { applyHealthState, HealthMonitor, type HealthFeed, type HealthState } from './health-monitor.js';
import { ServerState } from './server-state.js';

export { ServerState };

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
  /** The pool's name in `pools:` (`default`: the `backends:` section). */
  readonly name: string;
  readonly servers: ServerState[];
  /** STARTTLS to the backends, with one client session cache for them all. */
  readonly tlsPolicy: BackendTlsPolicy;
  /** Decides health: for every server without a feed, for routed-to servers always. */
  readonly #monitor: HealthMonitor;
  readonly #feed: HealthFeed | null;
  #unfollow: (() => void) | null = null;

  constructor(
    readonly cfg: BackendsConfig,
    private readonly opts: { hostname: string; logger: Logger; metrics: Metrics; feed?: HealthFeed | null; name?: string },
  ) {
    this.name = opts.name ?? 'default';
    this.servers = cfg.servers.map((s) => new ServerState(s));
    this.#monitor = new HealthMonitor(this.servers, cfg, { ...opts, pool: this.name });
    this.#feed = opts.feed ?? null;
    const t = cfg.tls;
    this.tlsPolicy = { mode: t.starttls, client: t.starttls === 'off' ? null : new BackendTls({ verify: t.verify, servername: t.servername, ca: t.ca }) };
    this.#unreport = opts.metrics.reportBoundSessions(() => this.#bound());
  }

  readonly #unreport: () => void;

  /** Sessions bound to each server (postern_backend_sessions_active), read at scrape time. */
  *#bound(): Iterable<BoundSessions> {
    for (const s of this.servers) yield { pool: this.name, backend: s.key, active: s.active };
    for (const s of this.#routed.values()) yield { pool: this.name, backend: s.key, active: s.active };
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

  /**
   * The first states (so the first EHLO offers the right extensions): the first round of
   * checks, or the host's states; then checks go on, or changes keep coming.
   */
  async start(): Promise<void> {
    if (this.#feed) {
      this.#unfollow = this.#feed.onChange((h) => this.#follow(h));
      for (const h of await this.#feed.current()) this.#follow(h);
    } else await this.#monitor.start();
    this.#startGreeted();
  }

  stop(): void {
    this.#unreport();
    this.#monitor.stop();
    this.#unfollow?.();
    for (const s of this.servers) s.greeted?.close();
  }

  #follow(h: HealthState): void {
    const s = this.servers.find((x) => x.key === h.key);
    if (s) applyHealthState(s, h);
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
  }

  release(s: ServerState): void {
    s.active--;
    if (this.#onIdle && this.idle()) this.#onIdle();
  }

  /** No session holds a server of this pool. */
  idle(): boolean {
    return this.servers.every((s) => s.active <= 0) && [...this.#routed.values()].every((s) => s.active <= 0);
  }

  #onIdle: (() => void) | null = null;

  /** A pool removed by a reload: stops (its checks, its ready connections) once its last session ends. */
  retire(stopped?: () => void): void {
    const end = () => {
      this.#onIdle = null;
      this.stop();
      stopped?.();
    };
    if (this.idle()) end();
    else this.#onIdle = end;
  }

  /** A session's handshake with `s` worked. */
  reportSuccess(s: ServerState, caps: Capabilities): void {
    s.caps = caps;
    if (s.up !== null) {
      s.failStreak = 0;
      return;
    }
    this.#report(s, { key: s.key, ok: true, reason: 'session handshake succeeded', unusable: false });
  }

  /** A session's connect or handshake with `s` failed (passive health detection). */
  reportFailure(s: ServerState, err: Error): void {
    this.#report(s, { key: s.key, ok: false, reason: `session: ${err.message}`, unusable: err instanceof BackendError && err.unusable });
  }

  /** To the host's monitor for a configured server; routed-to servers are this process's own. */
  #report(s: ServerState, o: Parameters<HealthFeed['report']>[0]): void {
    if (this.#feed && this.servers.includes(s)) this.#feed.report(o);
    else this.#monitor.report(o, s);
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
