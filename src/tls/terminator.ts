// Server-side TLS for every listener: one set of contexts, one ticket key set, one session cache
// and never-listening tls.Servers for Node's server-only events, so implicit TLS and STARTTLS
// resume identically.
import type net from 'node:net';
import tls from 'node:tls';
import type { TlsConfig } from '../config/types.js';
import { certificateRecord } from '../observe/records.js';
import type { SharedRedis, SharedRedisOpener } from './shared-redis.js';
import { ChallengeBoard } from './acme-challenges.js';
import { Http01Responder } from './acme-http.js';
import { AcmeStore } from './acme-store.js';
import type { AcmeManager } from './acme.js';
import { certificateName, ExpiryWatch, type ExpirySink } from './expiry.js';
import { FileWatch } from './file-watch.js';
import { loadCertificates, lookupSni, planSni, type CertGroup, type LoadedCertificate, type SniPlan } from './certificates.js';
import { buildContext, type ContextSettings } from './contexts.js';
import { AcmeChallengeAnswered, TlsConfigError, TlsHandshakeError } from './errors.js';
import { awaitHandshake } from './handshake.js';
import { serverNameOf, tlsInfo, type TlsInfo } from './info.js';
import { OcspStaple } from './ocsp.js';
import { peekClientHello } from './client-hello.js';
import { HostSessionCache } from './host-session-cache.js';
import { ServerSessionCache, type SessionCacheStats } from './session-cache.js';
import { sessionCacheTtl, type SessionStore } from './session-store.js';
import { installTicketKeyCallback, probeTicketKeyCallback, setSingleTicketKey, ticketKeyHandler } from './ticket-callback.js';
import type { TicketKeyBacking } from './ticket-key-backing.js';
import { TicketKeyStore } from './ticket-key-store.js';

export interface TlsLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

export interface TerminatorOptions {
  logger: TlsLogger;
  /** 'off' forces the one-key-at-a-time fallback (tests, or if the hook ever misbehaves). */
  ticketKeyCallback?: 'auto' | 'off';
  /** How often OCSP files are polled for changes. */
  ocspPollMs?: number;
  /** Where ticket keys are shared instead of `ticket_keys.file` (Redis, for several hosts). */
  ticketKeys?: TicketKeyBacking;
  /**
   * Where TLS 1.2 sessions are kept by ID (with `session_cache.size` > 0): the host's cache,
   * held by this process or asked of the cluster primary. Default: a cache of this process's own.
   */
  sessionStore?: SessionStore;
  /** Gets every certificate's notAfter by name (postern_tls_certificate_expiry_timestamp_seconds). */
  expirySink?: ExpirySink;
  /** `state.redis`: where ACME orders are locked and their certificates and challenge answers shared. */
  redis?: SharedRedisOpener | null;
  /** 'off': no certificate file watch and no ACME orders (only the store's current pair is served). */
  background?: 'on' | 'off';
}

/** How tickets are protected: overlapping keys via Node's hook, one key at a time, or no tickets. */
export type TicketMode = 'callback' | 'single-key' | 'off';

export interface AcceptOptions {
  /** Default 20 s. */
  timeoutMs?: number;
  /** Bytes already read from `raw` that belong to the TLS stream (e.g. after a PROXY header). */
  head?: Buffer;
}

interface Generation {
  certs: LoadedCertificate[];
  plan: SniPlan;
  contexts: Map<CertGroup, tls.SecureContext>;
  defaultCtx: tls.SecureContext;
  /** By the DER of the certificate Node reports for a context (what OCSPRequest receives). */
  staples: Map<string, OcspStaple>;
  defaultStaple: OcspStaple | null;
  files: OcspStaple[];
}

const DEFAULT_HANDSHAKE_TIMEOUT = 20_000;

export class TlsTerminator {
  /** The config at start: the session settings (tickets, cache) stay as they were until a restart. */
  readonly #startCfg: TlsConfig;
  readonly #opts: TerminatorOptions;
  readonly #keys: TicketKeyStore | null;
  readonly #cache: ServerSessionCache | null;
  #gen: Generation;
  #closed = false;
  /**
   * tls.Servers that never listen: sockets given one as `server:` get its OCSPRequest and session
   * events. Node arms the session-ID cache machinery (a ClientHello parser and two JS calls per
   * handshake) whenever the server has those listeners, and it never helps TLS 1.3, nor a TLS 1.2
   * client that offers tickets (it gets a ticket and resumes with it); so those get a sink without
   * them, and only TLS 1.2 clients without tickets pay for the cache (and fill it).
   */
  readonly #sinkTls13: tls.Server;
  readonly #sinkCache: tls.Server;
  /** The certificate part of the config in force (SIGHUP replaces it) and the context settings built from it. */
  #cfg: TlsConfig;
  #settings: ContextSettings;
  /** Certificate swaps one at a time: a file change and a SIGHUP must not interleave. */
  #swaps: Promise<void> = Promise.resolve();
  #watch: FileWatch | null = null;
  #expiry: ExpiryWatch;
  #acme: AcmeManager | null = null;
  #board: ChallengeBoard | null = null;
  #http01: Http01Responder | null = null;
  #redis: SharedRedis | null = null;

  private constructor(
    cfg: TlsConfig,
    opts: TerminatorOptions,
    keys: TicketKeyStore | null,
    readonly ticketMode: TicketMode,
    cache: ServerSessionCache | null,
    gen: Generation,
  ) {
    this.#startCfg = cfg;
    this.#opts = opts;
    this.#keys = keys;
    this.#cache = cache;
    this.#gen = gen;
    this.#cfg = cfg;
    this.#settings = contextSettings(cfg);
    this.#expiry = new ExpiryWatch({ logger: opts.logger, windowMs: cfg.watch.expiry_warning, sink: opts.expirySink });
    // No certificate of their own: OCSPRequest then gets `null` for "no SNI", i.e. the default context.
    this.#sinkTls13 = new tls.Server({});
    this.#sinkTls13.on('OCSPRequest', this.#onOcspRequest);
    if (cache) {
      this.#sinkCache = new tls.Server({});
      this.#sinkCache.on('OCSPRequest', this.#onOcspRequest);
      cache.attach(this.#sinkCache);
    } else this.#sinkCache = this.#sinkTls13;
    keys?.onCurrentChange((k) => {
      if (this.ticketMode !== 'single-key') return;
      for (const ctx of this.#gen.contexts.values()) setSingleTicketKey(ctx, k);
    });
  }

  static async create(cfg: TlsConfig, opts: TerminatorOptions): Promise<TlsTerminator> {
    const log = opts.logger;
    if (cfg.acme) await new AcmeStore(cfg.acme).prepare();
    const certs = await loadCertificates(servedCertificates(cfg));
    const settings = contextSettings(cfg);
    let keys: TicketKeyStore | null = null;
    let mode: TicketMode = 'off';
    if (cfg.session_tickets) {
      keys = await TicketKeyStore.open({
        file: cfg.ticket_keys.file,
        backing: opts.ticketKeys,
        rotate: cfg.ticket_keys.rotate,
        lifetime: cfg.ticket_keys.lifetime,
        logger: log,
      });
      mode = 'single-key';
      if (opts.ticketKeyCallback !== 'off') {
        const dflt = planSni(certs).default.members.map((i) => certs[i]!);
        const probe = await probeTicketKeyCallback(() => buildContext(dflt, settings));
        if (probe.ok) mode = 'callback';
        else log.warn({ reason: probe.reason }, 'TLS ticket-key callback unusable on this Node: one ticket key at a time, so each rotation costs every client one full handshake');
      }
    }
    const store = cfg.session_cache.size > 0 ? (opts.sessionStore ?? new HostSessionCache({ size: cfg.session_cache.size, ttlMs: sessionCacheTtl(cfg) })) : null;
    const cache = store ? new ServerSessionCache(store) : null;
    let gen: Generation;
    try {
      gen = await buildGeneration(certs, settings, mode, keys, opts);
    } catch (err) {
      keys?.close();
      throw err;
    }
    const t = new TlsTerminator(cfg, opts, keys, mode, cache, gen);
    t.#expiry.update(certs);
    if (opts.background !== 'off') {
      try {
        await t.#startBackground(cfg);
      } catch (err) {
        await t.closeAsync();
        throw err;
      }
    }
    log.info(
      {
        certificates: certs.map((c) => ({ file: c.config.cert, key_type: c.keyType, names: c.names, not_after: c.leaf.validTo })),
        min_version: cfg.min_version,
        session_timeout_s: settings.sessionTimeout,
        tickets: mode,
        ticket_key_file: cfg.session_tickets ? (opts.ticketKeys?.name ?? cfg.ticket_keys.file) : null,
        session_cache: cfg.session_cache.size,
      },
      'TLS ready',
    );
    return t;
  }

  /**
   * Server-side handshake on a raw TCP socket that nobody reads from any more (no 'data' listeners,
   * paused). `opts.head`, then anything still buffered in `raw`, are the client's first TLS bytes:
   * for STARTTLS, drain and discard pipelined plaintext before calling this.
   */
  async accept(raw: net.Socket, opts: AcceptOptions = {}): Promise<{ socket: tls.TLSSocket; info: TlsInfo }> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT;
    const started = Date.now();
    if (opts.head && opts.head.length > 0 && !raw.destroyed) {
      try {
        raw.unshift(opts.head);
      } catch (err) {
        raw.destroy();
        throw new TlsHandshakeError('connection closed', 'server', false, { cause: err });
      }
    }
    // The context must match the SNI name before OpenSSL starts (see client-hello.ts).
    const hello = await peekClientHello(raw, timeoutMs);
    // RFC 8737 3: a validator offers acme-tls/1 alone; such a connection is never an SMTP session.
    if (hello.alpn.includes(ACME_TLS_1)) return this.#answerAlpn(raw, hello.servername, Math.max(1, timeoutMs - (Date.now() - started)));
    const servername = hello.servername;
    const ctx = this.contextFor(servername);
    const sock = new tls.TLSSocket(raw, {
      isServer: true,
      server: hello.tls13 || (hello.ticket && this.ticketMode !== 'off') ? this.#sinkTls13 : this.#sinkCache,
      secureContext: ctx,
      // Same context again: Node then knows it for OCSPRequest; answered synchronously, no extra turn.
      SNICallback: (_name, cb) => cb(null, ctx),
      requestCert: false,
      rejectUnauthorized: false,
    });
    await awaitHandshake(sock, raw, 'secure', 'server', Math.max(1, timeoutMs - (Date.now() - started)));
    // What tls.Server does once secure: later TLS errors become ordinary 'error' events (otherwise
    // Node swallows them on sockets it did not accept itself and the socket just hangs).
    (sock as unknown as { _releaseControl?: () => boolean })._releaseControl?.();
    // A safety net: never an unhandled 'error'. Callers attach their own listener for logging.
    sock.on('error', () => sock.destroy());
    // SNI as read from the ClientHello: Node's own view of it is empty after a TLS 1.2 resumption.
    return { socket: sock, info: tlsInfo(sock, servername ?? serverNameOf(sock)) };
  }

  /** SIGHUP: new certificates and OCSP files; ticket keys and the session cache stay. Throws, keeping the old state, if they don't load. */
  async reload(cfg: TlsConfig): Promise<void> {
    const ignored = (['session_tickets', 'ticket_keys', 'session_cache'] as const).filter((k) => JSON.stringify(cfg[k]) !== JSON.stringify(this.#startCfg[k]));
    if (ignored.length > 0) this.#opts.logger.warn({ settings: ignored.map((k) => `tls.${k}`) }, 'TLS session settings change on restart only; keeping the current ones');
    const restartBackground =
      JSON.stringify([cfg.acme, cfg.watch, cfg.certificates]) !== JSON.stringify([this.#cfg.acme, this.#cfg.watch, this.#cfg.certificates]);
    if (cfg.acme) await new AcmeStore(cfg.acme).prepare();
    const settings = { ...contextSettings(this.#startCfg), minVersion: cfg.min_version };
    const certs = await this.#serialised(async () => {
      const loaded = await loadCertificates(servedCertificates(cfg));
      await this.#swap(loaded, settings);
      this.#cfg = cfg;
      this.#settings = settings;
      return loaded;
    });
    this.#opts.logger.info({ certificates: certs.map((c) => ({ file: c.config.cert, key_type: c.keyType, names: c.names })) }, 'TLS certificates reloaded');
    if (restartBackground && this.#opts.background !== 'off' && !this.#closed) {
      await this.#stopBackground();
      await this.#startBackground(cfg);
    }
  }

  /** Runs certificate swaps one after another. */
  #serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#swaps.then(fn);
    this.#swaps = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Puts a new generation of contexts in place; sessions already running keep theirs. */
  async #swap(certs: LoadedCertificate[], settings: ContextSettings): Promise<void> {
    const next = await buildGeneration(certs, settings, this.ticketMode, this.#keys, this.#opts);
    const old = this.#gen;
    this.#gen = next;
    for (const s of old.files) s.close();
    if (this.#closed) for (const s of next.files) s.close();
    this.#expiry.update(certs);
  }

  /**
   * A certificate or key file changed on disk (or ACME wrote a new pair): load every pair again and
   * swap them in if all load and match; otherwise log why and keep serving the current ones.
   */
  reloadFiles(): Promise<void> {
    return this.#serialised(async () => {
      if (this.#closed) return;
      const before = new Map(this.#gen.certs.map((c) => [c.config.cert, c.serial]));
      let certs: LoadedCertificate[];
      try {
        certs = await loadCertificates(servedCertificates(this.#cfg));
      } catch (err) {
        const file = err instanceof TlsConfigError && err.path ? err.path : 'unknown';
        const old = this.#gen.certs.find((c) => c.config.cert === file || c.config.key === file);
        const rec = certificateRecord({
          action: 'refused',
          name: old ? certificateName(old) : file,
          file,
          not_after: old ? new Date(old.leaf.validTo).toISOString() : null,
          reason: (err as Error).message,
        });
        this.#opts.logger.warn(rec, `certificate change refused, still serving the previous one: ${rec.reason}`);
        return;
      }
      const changed = certs.filter((c) => before.get(c.config.cert) !== c.serial);
      if (changed.length === 0) return;
      await this.#swap(certs, this.#settings);
      for (const c of changed) {
        const rec = certificateRecord({ action: 'loaded', name: certificateName(c), file: c.config.cert, not_after: new Date(c.leaf.validTo).toISOString() });
        this.#opts.logger.info(rec, `certificate ${rec.name} loaded from ${rec.file}`);
      }
    });
  }

  /** File watch, and ACME (the store, the challenge board, the http-01 responder, the order schedule). */
  async #startBackground(cfg: TlsConfig): Promise<void> {
    const files = servedCertificates(cfg).flatMap((c) => [c.cert, c.key]);
    this.#watch = await FileWatch.start(files, { intervalMs: cfg.watch.interval, onChange: () => void this.reloadFiles() });
    const acme = cfg.acme;
    if (!acme) return;
    const store = new AcmeStore(acme);
    const openRedis = this.#opts.redis ?? null;
    if (openRedis) this.#redis = await openRedis();
    this.#board = new ChallengeBoard(store.challengeDir, this.#redis);
    if (acme.challenge === 'http-01' && acme.listen) {
      try {
        this.#http01 = await Http01Responder.listen(acme.listen, this.#board);
      } catch (err) {
        // Another instance on this host answers there (it finds the answers in the store or Redis).
        this.#opts.logger.warn({ listen: acme.listen.text, err: (err as Error).message }, 'ACME http-01 responder not started here');
      }
    }
    // acme-client (axios, node-forge) is loaded only where ACME is configured.
    const { AcmeManager } = await import('./acme.js');
    this.#acme = new AcmeManager({
      cfg: acme,
      store,
      board: this.#board,
      redis: this.#redis,
      logger: this.#opts.logger,
      onNewCertificate: async () => {
        await this.reloadFiles();
        await this.#watch?.settle();
      },
    });
    this.#acme.start();
  }

  async #stopBackground(): Promise<void> {
    this.#watch?.close();
    this.#watch = null;
    await this.#acme?.close();
    this.#acme = null;
    await this.#http01?.close();
    this.#http01 = null;
    await this.#redis?.close();
    this.#redis = null;
  }

  /** Answers a tls-alpn-01 validation with the challenge certificate for its SNI name, then closes. */
  async #answerAlpn(raw: net.Socket, servername: string | null, timeoutMs: number): Promise<never> {
    const text = servername && this.#board ? await this.#board.get('tls-alpn-01', servername) : null;
    if (!text || !servername) {
      raw.destroy();
      throw new TlsHandshakeError(`acme-tls/1 offered for ${servername ?? 'no name'} with no ACME challenge pending`, 'server');
    }
    const answer = JSON.parse(text) as { certPem: string; keyPem: string };
    const sock = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: tls.createSecureContext({ cert: answer.certPem, key: answer.keyPem, minVersion: 'TLSv1.2' }),
      ALPNProtocols: ACME_ALPN_WIRE as unknown as string[],
      requestCert: false,
      rejectUnauthorized: false,
    });
    await awaitHandshake(sock, raw, 'secure', 'server', timeoutMs);
    sock.on('error', () => undefined);
    sock.end();
    setTimeout(() => sock.destroy(), 1000).unref();
    throw new AcmeChallengeAnswered(servername);
  }

  /** The ACME manager (tests: run a look now). */
  get acme(): AcmeManager | null {
    return this.#acme;
  }

  /** Close and wait for background work (ACME order, Redis link) to stop. */
  async closeAsync(): Promise<void> {
    this.close();
    await this.#stopBackground();
  }

  close(): void {
    this.#closed = true;
    this.#watch?.close();
    this.#expiry.close();
    void this.#stopBackground();
    this.#keys?.close();
    for (const s of this.#gen.files) s.close();
  }

  get sessionCacheStats(): SessionCacheStats | null {
    return this.#cache ? { ...this.#cache.stats } : null;
  }

  /** The context a client's SNI selects (tests and diagnostics). */
  contextFor(servername: string | null): tls.SecureContext {
    const gen = this.#gen;
    return gen.contexts.get(lookupSni(gen.plan, servername)) ?? gen.defaultCtx;
  }

  readonly #onOcspRequest = (cert: Buffer | null, _issuer: Buffer | null, cb: (err: Error | null, resp: Buffer | null) => void): void => {
    const gen = this.#gen;
    const staple = cert ? gen.staples.get(cert.toString('base64')) : gen.defaultStaple;
    cb(null, staple?.response() ?? null);
  };
}

/** The protocol name a tls-alpn-01 validator offers (RFC 8737 6.2). */
const ACME_TLS_1 = 'acme-tls/1';
/** Node takes a server socket's ALPN list in wire form (length-prefixed names, RFC 7301 3.1). */
const ACME_ALPN_WIRE = Buffer.concat([Buffer.from([ACME_TLS_1.length]), Buffer.from(ACME_TLS_1)]);

/** The configured pairs, with the ACME pair in the store after them (first when none is configured). */
export function servedCertificates(cfg: TlsConfig): TlsConfig['certificates'] {
  if (!cfg.acme) return cfg.certificates;
  return [...cfg.certificates, new AcmeStore(cfg.acme).pair];
}

function contextSettings(cfg: TlsConfig): ContextSettings {
  const lifetime = cfg.session_tickets ? cfg.ticket_keys.lifetime : cfg.session_cache.lifetime;
  return { minVersion: cfg.min_version, sessionTimeout: Math.max(1, Math.round(lifetime / 1000)), tickets: cfg.session_tickets };
}

async function buildGeneration(
  certs: LoadedCertificate[],
  settings: ContextSettings,
  mode: TicketMode,
  keys: TicketKeyStore | null,
  opts: TerminatorOptions,
): Promise<Generation> {
  const log = opts.logger;
  const plan = planSni(certs);
  const handler = keys && mode === 'callback' ? ticketKeyHandler(keys) : null;
  const contexts = new Map<CertGroup, tls.SecureContext>();
  for (const g of plan.groups) {
    const ctx = buildContext(
      g.members.map((i) => certs[i]!),
      settings,
    );
    // Every context gets the hook: Node calls the one of the context SNI switched to.
    if (handler) installTicketKeyCallback(ctx, handler);
    else if (keys && mode === 'single-key') setSingleTicketKey(ctx, keys.current());
    contexts.set(g, ctx);
  }
  const now = Date.now();
  certs.forEach((c, i) => {
    if (c.names.length === 0 && i > 0) log.warn({ file: c.config.cert }, 'certificate has no DNS names in subjectAltName; SNI never selects it');
    if (Date.parse(c.leaf.validTo) < now) log.warn({ file: c.config.cert, not_after: c.leaf.validTo }, 'certificate has expired');
  });

  // OCSP: one staple per certificate file; a context holding two certificates (RSA + ECDSA) staples
  // nothing, because Node asks for the staple before OpenSSL has picked the certificate.
  const perCert = new Map<number, OcspStaple>();
  for (const c of certs) {
    if (!c.config.ocsp) continue;
    const s = new OcspStaple(c.config.ocsp, c.serial, log);
    await s.load();
    s.watch(opts.ocspPollMs ?? 5000);
    perCert.set(c.index, s);
  }
  const staples = new Map<string, OcspStaple>();
  let defaultStaple: OcspStaple | null = null;
  for (const [g, ctx] of contexts) {
    const withOcsp = g.members.filter((i) => perCert.has(i));
    if (withOcsp.length === 0) continue;
    if (g.members.length > 1) {
      log.warn({ files: withOcsp.map((i) => certs[i]!.config.ocsp) }, 'OCSP is not stapled for names served by two certificates of different key types');
      continue;
    }
    const staple = perCert.get(g.members[0]!)!;
    const der = (ctx.context as { getCertificate(): Buffer | null }).getCertificate();
    if (der) staples.set(der.toString('base64'), staple);
    if (g === plan.default) defaultStaple = staple;
  }
  return { certs, plan, contexts, defaultCtx: contexts.get(plan.default)!, staples, defaultStaple, files: [...perCert.values()] };
}
