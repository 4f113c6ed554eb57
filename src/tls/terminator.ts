// Server-side TLS for every listener: one set of contexts, one ticket key set, one session cache
// and never-listening tls.Servers for Node's server-only events, so implicit TLS and STARTTLS
// resume identically.
import type net from 'node:net';
import tls from 'node:tls';
import type { TlsConfig } from '../config/types.js';
import { loadCertificates, lookupSni, planSni, type CertGroup, type LoadedCertificate, type SniPlan } from './certificates.js';
import { buildContext, type ContextSettings } from './contexts.js';
import { TlsHandshakeError } from './errors.js';
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
  private gen: Generation;
  private closed = false;
  /**
   * tls.Servers that never listen: sockets given one as `server:` get its OCSPRequest and session
   * events. Node arms the session-ID cache machinery (a ClientHello parser and two JS calls per
   * handshake) whenever the server has those listeners, and it never helps TLS 1.3, nor a TLS 1.2
   * client that offers tickets (it gets a ticket and resumes with it); so those get a sink without
   * them, and only TLS 1.2 clients without tickets pay for the cache (and fill it).
   */
  private readonly sinkTls13: tls.Server;
  private readonly sinkCache: tls.Server;

  private constructor(
    private readonly cfg: TlsConfig,
    private readonly opts: TerminatorOptions,
    private readonly keys: TicketKeyStore | null,
    readonly ticketMode: TicketMode,
    private readonly cache: ServerSessionCache | null,
    gen: Generation,
  ) {
    this.gen = gen;
    // No certificate of their own: OCSPRequest then gets `null` for "no SNI", i.e. the default context.
    this.sinkTls13 = new tls.Server({});
    this.sinkTls13.on('OCSPRequest', this.onOcspRequest);
    if (cache) {
      this.sinkCache = new tls.Server({});
      this.sinkCache.on('OCSPRequest', this.onOcspRequest);
      cache.attach(this.sinkCache);
    } else this.sinkCache = this.sinkTls13;
    keys?.onCurrentChange((k) => {
      if (this.ticketMode !== 'single-key') return;
      for (const ctx of this.gen.contexts.values()) setSingleTicketKey(ctx, k);
    });
  }

  static async create(cfg: TlsConfig, opts: TerminatorOptions): Promise<TlsTerminator> {
    const log = opts.logger;
    const certs = await loadCertificates(cfg.certificates);
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
    const servername = hello.servername;
    const ctx = this.contextFor(servername);
    const sock = new tls.TLSSocket(raw, {
      isServer: true,
      server: hello.tls13 || (hello.ticket && this.ticketMode !== 'off') ? this.sinkTls13 : this.sinkCache,
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
    const ignored = (['session_tickets', 'ticket_keys', 'session_cache'] as const).filter((k) => JSON.stringify(cfg[k]) !== JSON.stringify(this.cfg[k]));
    if (ignored.length > 0) this.opts.logger.warn({ settings: ignored.map((k) => `tls.${k}`) }, 'TLS session settings change on restart only; keeping the current ones');
    const certs = await loadCertificates(cfg.certificates);
    const settings = { ...contextSettings(this.cfg), minVersion: cfg.min_version };
    const next = await buildGeneration(certs, settings, this.ticketMode, this.keys, this.opts);
    const old = this.gen;
    this.gen = next;
    for (const s of old.files) s.close();
    if (this.closed) for (const s of next.files) s.close();
    this.opts.logger.info({ certificates: certs.map((c) => ({ file: c.config.cert, key_type: c.keyType, names: c.names })) }, 'TLS certificates reloaded');
  }

  close(): void {
    this.closed = true;
    this.keys?.close();
    for (const s of this.gen.files) s.close();
  }

  get sessionCacheStats(): SessionCacheStats | null {
    return this.cache ? { ...this.cache.stats } : null;
  }

  /** The context a client's SNI selects (tests and diagnostics). */
  contextFor(servername: string | null): tls.SecureContext {
    const gen = this.gen;
    return gen.contexts.get(lookupSni(gen.plan, servername)) ?? gen.defaultCtx;
  }

  private readonly onOcspRequest = (cert: Buffer | null, _issuer: Buffer | null, cb: (err: Error | null, resp: Buffer | null) => void): void => {
    const gen = this.gen;
    const staple = cert ? gen.staples.get(cert.toString('base64')) : gen.defaultStaple;
    cb(null, staple?.response() ?? null);
  };
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
