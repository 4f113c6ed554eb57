// The running proxy: listeners, admission, backend pool, live sessions, drain and reload.

import type { Config, ListenerConfig } from '../config/types.js';
import { Authenticator, createVerifier } from '../auth/index.js';
import type { HealthFeed } from '../backend/health-monitor.js';
import type { BackendPool } from '../backend/pool.js';
import type { RouteTable } from '../route/index.js';
import { compileRoutes, PoolSet } from './routing.js';
import type { Logger } from '../observe/logger.js';
import { Metrics } from '../observe/metrics.js';
import type { DecisionPoints } from '../session/decision.js';
import type { Session } from '../session/session.js';
import { TlsTerminator, type TerminatorOptions } from '../tls/index.js';
import type { SharedRedisOpener } from '../tls/shared-redis.js';
import { RedisLink } from '../state/redis-link.js';
import type { TicketKeyBacking } from '../tls/ticket-key-backing.js';
import type { SessionStore } from '../tls/session-store.js';
import { AcceptPipeline, type AcceptContext } from './accept.js';
import { Admission, type AdmissionControl } from './admission.js';
import type { InheritedSockets } from './inherited-sockets.js';
import { Listener } from './listener.js';
import { LocalWindowCounter, type WindowCounter } from '../state/windows.js';
import { observeDnsblQuery } from '../observe/record-metrics.js';
import { Screener } from '../screen/screener.js';
import { Dnsbl } from '../screen/dnsbl.js';
import type { DnsblFactory, DnsblLookup } from '../screen/types.js';
import { LiveSessions } from './live-sessions.js';
import { warmSocketFeedback } from '../net/socket-feedback.js';

export interface PosternOptions {
  logger: Logger;
  metrics?: Metrics;
  /** Per-IP and total limits decided elsewhere (the cluster primary, Redis); local by default. */
  admission?: AdmissionControl;
  /** Window counts (auth failures per IP and per user), shared like admission; local by default. */
  windows?: WindowCounter;
  /** Listening sockets handed over (systemd, a predecessor): used instead of binding where they match. */
  sockets?: InheritedSockets;
  /** Where TLS ticket keys are shared instead of `tls.ticket_keys.file` (Redis). */
  ticketKeys?: TicketKeyBacking;
  /** The host's TLS session cache (held here, or by the cluster primary); one of the terminator's own by default. */
  sessionStore?: SessionStore;
  /** Decisions before a backend is spent (screening, routing), plugged into every session. */
  decisions?: DecisionPoints;
  /** Makes the DNSBL client for `screen.dnsbl` (tests may give a fixed table); `Dnsbl` otherwise; null: no lookups. */
  dnsbl?: DnsblFactory | null;
  /** Backend health decided by the host (a cluster's primary); checked here when absent. */
  healthFeed?: HealthFeed | null;
  /** For this process's own lifecycle lines (TLS ready, verifier reloads); `logger` by default. */
  processLogger?: Logger;
  /** Whether opening a listener writes its `listening` record (a cluster's primary writes them once). */
  announce?: boolean;
}

/** The `listening` record of one listener. */
export function logListening(logger: Logger, cfg: ListenerConfig, address: { host: string; port: number }, fd: number | null): void {
  const how = fd === null ? '' : ` (inherited socket, fd ${fd})`;
  logger.info({ listener: cfg.name, address, ...(fd === null ? {} : { fd }) }, `listening on ${cfg.listen.text}${how}`);
}

/** How often the DNSBL zones are checked for answering everything (RFC 5782 §5), after a check at start. */
const ZONE_CHECK_MS = 3_600_000;

/** The DNSBL client screening uses by default: c-ares, zones checked at start and hourly. */
const DEFAULT_DNSBL: DnsblFactory = (opts, hooks) => {
  const d = new Dnsbl(opts, hooks);
  d.startPeriodicCheck(ZONE_CHECK_MS);
  return d;
};

/** Longest a stop waits for connections accepted but not yet sessions (see stop()). */
const ARRIVAL_WAIT_MS = 2000;

export class Postern implements AcceptContext {
  #config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  #pools: PoolSet;
  #routes: RouteTable;
  readonly #admission: AdmissionControl;
  readonly #windows: WindowCounter;
  #listeners: Listener[] = [];
  readonly sessions = new LiveSessions<Session>();
  #draining = false;
  #tls: TlsTerminator | null = null;
  #auth: Authenticator | null = null;
  readonly #pipeline: AcceptPipeline;
  readonly #sockets: InheritedSockets | null;
  readonly #ticketKeys: TicketKeyBacking | undefined;
  readonly #sessionStore: SessionStore | undefined;
  readonly decisions: DecisionPoints | null;
  /** Screening for listeners with `screen: on`: the shared pass cache and the DNSBL client. */
  readonly screener: Screener;
  readonly #dnsblFactory: DnsblFactory | null;
  readonly #feed: HealthFeed | null;
  readonly #processLogger: Logger;
  readonly #announce: boolean;

  constructor(config: Config, opts: PosternOptions) {
    this.#config = config;
    this.logger = opts.logger;
    this.#processLogger = opts.processLogger ?? opts.logger;
    this.#announce = opts.announce ?? true;
    this.#feed = opts.healthFeed ?? null;
    this.metrics = opts.metrics ?? new Metrics({ processMetrics: true });
    this.#pools = this.#newPools(config);
    this.#routes = compileRoutes(config);
    this.#admission = opts.admission ?? new Admission(config.limits);
    this.#windows = opts.windows ?? new LocalWindowCounter();
    this.#pipeline = new AcceptPipeline(this);
    this.#sockets = opts.sockets ?? null;
    this.#ticketKeys = opts.ticketKeys;
    this.#sessionStore = opts.sessionStore;
    this.decisions = opts.decisions ?? null;
    this.#dnsblFactory = opts.dnsbl === undefined ? DEFAULT_DNSBL : opts.dnsbl;
    this.screener = new Screener({ windows: this.#windows, logger: this.#processLogger });
  }

  /** The DNSBL client for `screen.dnsbl` (null without sites, or without a client in this build). */
  #newDnsbl(config: Config): DnsblLookup | null {
    const d = config.screen.dnsbl;
    if (d.sites.length === 0 || !config.listeners.some((l) => l.screen === 'on')) return null;
    if (!this.#dnsblFactory) {
      this.#processLogger.warn({ sites: d.sites }, 'screen.dnsbl.sites is set but no DNSBL client was given; no lookups are made');
      return null;
    }
    const m = this.metrics;
    const log = this.#processLogger;
    // dnsbl_ttl_from_dns off: every answer is kept for max_ttl, as postscreen's fixed
    // postscreen_dnsbl_ttl did before its TTLs came from DNS.
    const fromDns = config.screen.cache.dnsbl_ttl_from_dns;
    return this.#dnsblFactory(
      { sites: d.sites, resolvers: d.resolvers, timeoutMs: d.timeout, minTtlMs: fromDns ? d.min_ttl : d.max_ttl, maxTtlMs: d.max_ttl },
      { query: (zone, result, seconds) => observeDnsblQuery(m, zone, result, seconds), warn: (msg, detail) => log.warn(detail, msg) },
    );
  }

  get config(): Config {
    return this.#config;
  }

  /** The pool `default` (or the first): what sessions not yet routed offer and read. */
  get pool(): BackendPool {
    return this.#pools.front;
  }

  /** Every pool, by name. */
  get pools(): PoolSet {
    return this.#pools;
  }

  /** The pools and the route table new sessions use (a reload replaces either). */
  get routing(): { table: RouteTable; pool: (name: string) => BackendPool | undefined } {
    const pools = this.#pools;
    return { table: this.#routes, pool: (name) => pools.get(name) };
  }

  get tls(): TlsTerminator | null {
    return this.#tls;
  }

  get draining(): boolean {
    return this.#draining;
  }

  get admission(): AdmissionControl {
    return this.#admission;
  }

  /** Where auth failure windows are counted (this process, the cluster primary, or Redis). */
  get windows(): WindowCounter {
    return this.#windows;
  }

  /** SMTP AUTH at Postern, or null without an `auth:` section. */
  get authenticator(): Authenticator | null {
    return this.#auth;
  }

  /** The Authenticator for `auth` (failures counted in the shared windows); throws if its verifier cannot start. */
  async #newAuthenticator(auth: Config['auth']): Promise<Authenticator | null> {
    if (!auth) return null;
    return new Authenticator(await createVerifier(auth.verifier), this.#windows, auth.failures);
  }

  #newPools(config: Config): PoolSet {
    return new PoolSet(config, { logger: this.logger, metrics: this.metrics, feed: this.#feed });
  }

  /** Checks the backends once, then opens the listeners. Throws ListenError on a bind failure. */
  async start(): Promise<void> {
    warmSocketFeedback();
    if (this.#config.tls) this.#tls = await TlsTerminator.create(this.#config.tls, this.#tlsOptions());
    this.#auth = await this.#newAuthenticator(this.#config.auth);
    this.screener.dnsbl = this.#newDnsbl(this.#config);
    await this.#pools.start();
    try {
      for (const cfg of this.#config.listeners) this.#listeners.push(await this.#open(cfg));
    } catch (err) {
      await this.#closeListeners();
      this.#pools.stop();
      this.#tls?.close();
      await this.#auth?.close();
      throw err;
    }
  }

  /** ACME's share of `state.redis`: a connection of its own, opened when ACME first needs it. */
  #redisOpener(): SharedRedisOpener | null {
    const r = this.#config.state.redis;
    if (!r) return null;
    return async () => {
      const link = new RedisLink({ url: r.url, prefix: r.prefix, logger: this.#processLogger });
      await link.ready(3000);
      return link;
    };
  }

  #tlsOptions(): TerminatorOptions {
    return {
      logger: this.#processLogger,
      ticketKeys: this.#ticketKeys,
      sessionStore: this.#sessionStore,
      expirySink: (e) => this.metrics.setCertificateExpiries(e),
      redis: this.#redisOpener(),
    };
  }

  async #open(cfg: ListenerConfig): Promise<Listener> {
    const l = new Listener(cfg, (s, l) => this.#pipeline.accept(s, l));
    const fd = this.#sockets?.take(cfg.listen, cfg.name) ?? null;
    await l.listen(fd);
    if (this.#announce) logListening(this.logger, cfg, l.address(), fd);
    return l;
  }

  /** The open listeners (their sockets are what an upgrade hands over). */
  get listeners(): readonly Listener[] {
    return this.#listeners;
  }

  /** Bound addresses by listener name (tests use port 0). */
  addresses(): Record<string, { host: string; port: number }> {
    return Object.fromEntries(this.#listeners.map((l) => [l.cfg.name, l.address()]));
  }

  /**
   * SIGHUP: a new config for new sessions; running sessions keep what they have.
   * Listeners whose address changed are reopened. What this does not apply is listed in
   * config/reload-plan.ts; the caller reports the outcome (server/reload-report.ts).
   */
  async reload(next: Config): Promise<void> {
    const old = this.#config;
    // Routes first: a domain file that cannot be read fails the reload before anything changed.
    const routes = compileRoutes(next);
    // Certificates next: if they do not load, nothing changes (the error reaches the caller).
    if (next.tls && this.#tls) await this.#tls.reload(next.tls);
    else if (next.tls && !this.#tls) this.#tls = await TlsTerminator.create(next.tls, this.#tlsOptions());
    // AUTH: a new verifier when its settings changed (the old one closes once built);
    // otherwise the verifier reloads what it reads itself (the password file).
    if (JSON.stringify(old.auth) !== JSON.stringify(next.auth)) {
      const auth = await this.#newAuthenticator(next.auth);
      const was = this.#auth;
      this.#auth = auth;
      void was?.close();
    } else if (this.#auth) {
      const r = await this.#auth.reload();
      if (r.ok) this.#processLogger.info({ event: 'reload', key: 'auth.verifier', detail: r.detail }, 'auth verifier reloaded');
      else this.#processLogger.warn({ event: 'reload_failed', key: 'auth.verifier', err: r.reason }, 'auth verifier reload failed; keeping the old one');
    }
    this.#config = next;
    if (JSON.stringify(old.screen.dnsbl) !== JSON.stringify(next.screen.dnsbl) || JSON.stringify(old.listeners) !== JSON.stringify(next.listeners)) {
      this.screener.dnsbl = this.#newDnsbl(next);
    }
    this.#admission.update(next.limits);
    if (this.#pools.differs(next)) {
      // New pools for new sessions; sessions under way keep theirs, which drain.
      const pools = this.#newPools(next);
      await pools.start();
      this.#pools.retire();
      this.#pools = pools;
    }
    this.#routes = routes;
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
      keep.push(await this.#open(cfg));
    }
    this.#listeners = keep;
  }

  /**
   * Stops accepting, lets sessions finish for up to `graceMs`, then tells the rest
   * `421 4.3.2` and closes them.
   */
  async stop(graceMs = this.#config.shutdown_grace): Promise<void> {
    this.#draining = true;
    await this.#closeListeners();
    this.#pools.stop();
    const deadline = Date.now() + graceMs;
    // Connections still arriving (PROXY header, admission, handshake) become sessions within
    // moments; one that does not (a client idle in its TLS handshake) must not hold the stop
    // for the whole grace: arrivals are waited for ARRIVAL_WAIT_MS at most.
    const arrivalsUntil = Date.now() + Math.min(ARRIVAL_WAIT_MS, graceMs);
    const open = () => this.sessions.size > 0 || (this.#pipeline.arriving > 0 && Date.now() < arrivalsUntil);
    while (open() && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(1, deadline - Date.now()))));
    }
    // Each session is told once; one that arrived after the first round is told in the next.
    const told = new WeakSet<object>();
    const tell = () => {
      for (const s of this.sessions) if (!told.has(s)) (told.add(s), s.shutdown());
    };
    tell();
    const hard = Date.now() + 2000;
    while (open() && Date.now() < hard) {
      tell();
      await new Promise((r) => setTimeout(r, 20));
    }
    this.#admission.close();
    this.screener.close();
    this.#windows.close();
    this.#tls?.close();
    await this.#auth?.close();
  }

  async #closeListeners(): Promise<void> {
    const ls = this.#listeners;
    this.#listeners = [];
    // server.close() waits for open connections; sessions are drained separately.
    await Promise.all(ls.map((l) => Promise.race([l.close(), new Promise((r) => setTimeout(r, 0))])));
  }
}
