// Postern as a TLS client to its backends (after the backend's 220 to STARTTLS): verification and
// a session cache so our own connections resume.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { LRUCache } from 'lru-cache';
import { TlsConfigError } from './errors.js';
import { awaitHandshake } from './handshake.js';
import { tlsInfo, type TlsInfo } from './info.js';

export interface BackendTlsConfig {
  verify: boolean;
  /** Name to check (and send as SNI); null = the server's configured host. */
  servername: string | null;
  /** PEM file of the CAs to trust; null = the system/bundled CAs. */
  ca: string | null;
}

export interface BackendServer {
  host: string;
  port: number;
  text: string;
}

/**
 * Sessions per backend and verification profile. Node skips the host-name check when a session is
 * resumed, so the key holds everything verification depends on: a session from a lax profile must
 * never be offered under a strict one. Share one cache between BackendTls instances (e.g. across a
 * config reload) to keep sessions; the key keeps profiles apart.
 */
export class BackendSessionCache {
  readonly #lru: LRUCache<string, Buffer>;
  constructor(size = 1000, ttlMs = 2 * 3600_000) {
    this.#lru = new LRUCache<string, Buffer>({ max: Math.max(1, size), ttl: ttlMs });
  }
  get(key: string): Buffer | undefined {
    return this.#lru.get(key);
  }
  set(key: string, session: Buffer): void {
    this.#lru.set(key, session);
  }
  /** Drops `key` only if it still holds `session` (a newer one may have arrived meanwhile). */
  dropIf(key: string, session: Buffer): void {
    if (this.#lru.get(key) === session) this.#lru.delete(key);
  }
  get size(): number {
    return this.#lru.size;
  }
}

const DEFAULT_TIMEOUT = 20_000;

export class BackendTls {
  readonly #cfg: BackendTlsConfig;
  readonly #caPem: string | undefined;
  readonly #profile: string;
  readonly cache: BackendSessionCache;

  constructor(
    cfg: BackendTlsConfig,
    opts: { cacheSize?: number; cache?: BackendSessionCache } = {},
  ) {
    this.#cfg = cfg;
    if (cfg.ca !== null) {
      try {
        this.#caPem = readFileSync(cfg.ca, 'utf8');
      } catch (err) {
        throw new TlsConfigError('TLS_CA', `cannot read backends.tls.ca ${cfg.ca}: ${(err as Error).message}`, cfg.ca, { cause: err });
      }
      if (!this.#caPem.includes('-----BEGIN CERTIFICATE-----')) throw new TlsConfigError('TLS_CA', `backends.tls.ca ${cfg.ca} holds no PEM certificate`, cfg.ca);
    }
    // The CA's contents, not just its path: a replaced CA file must not inherit sessions verified by the old one.
    const caId = this.#caPem === undefined ? 'system' : `${cfg.ca}#${createHash('sha256').update(this.#caPem).digest('hex').slice(0, 16)}`;
    this.#profile = `verify=${cfg.verify}|ca=${caId}`;
    this.cache = opts.cache ?? new BackendSessionCache(opts.cacheSize);
  }

  /** The name checked against the backend's certificate. */
  nameFor(server: BackendServer): string {
    return this.#cfg.servername ?? server.host;
  }

  cacheKey(server: BackendServer): string {
    return `${server.text}|name=${this.nameFor(server)}|${this.#profile}`;
  }

  /**
   * Upgrades a connected socket after the backend's 220 to STARTTLS. Rejects with
   * TlsHandshakeError (verify: true for certificate or name failures) and destroys the socket.
   */
  async connect(socket: net.Socket, server: BackendServer, opts: { timeoutMs?: number } = {}): Promise<{ socket: tls.TLSSocket; info: TlsInfo }> {
    const name = this.nameFor(server);
    const key = this.cacheKey(server);
    const offered = this.cache.get(key);
    const sni = net.isIP(name) === 0 ? name : null;
    const sock = tls.connect({
      socket,
      // `host` is what checkServerIdentity checks when there is no servername (IP literals: RFC 6066 forbids them as SNI).
      host: name,
      ...(sni === null ? {} : { servername: sni }),
      ca: this.#caPem,
      rejectUnauthorized: this.#cfg.verify,
      session: offered,
    });
    // TLS 1.3 tickets come after the handshake (while the post-TLS EHLO is read): keep the newest.
    sock.on('session', (s: Buffer) => this.cache.set(key, s));
    await awaitHandshake(sock, socket, 'secureConnect', 'client', opts.timeoutMs ?? DEFAULT_TIMEOUT);
    const reused = sock.isSessionReused();
    if (offered && !reused) this.cache.dropIf(key, offered);
    if (reused && sock.getProtocol() !== 'TLSv1.3') {
      // A resumed TLS 1.2 connection fires no 'session'; its (possibly renewed) session is here.
      const s = sock.getSession();
      if (s) this.cache.set(key, s);
    }
    sock.on('error', () => sock.destroy());
    return { socket: sock, info: tlsInfo(sock, sni) };
  }
}
