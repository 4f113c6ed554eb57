// Ready backend connections per server: pre-greeted ones (connected, 220 read, our EHLO
// sent) so a session's bind skips those round trips, and, with identity none, connections
// back from a session that ended cleanly (reuse, as Postfix's own SMTP client caches
// connections). With XCLIENT a connection serves a single session: Postfix decides XCLIENT
// rights once per connection, and after XCLIENT ADDR=client a second XCLIENT is refused.

import type { HostPort } from '../config/types.js';
import type { Capabilities } from '../smtp/ehlo.js';
import { BackendConnection } from './connection.js';
import { ehlo, greeting } from './dialog.js';
import { secureBackend, type BackendTlsPolicy } from './starttls.js';

export interface Greeted {
  conn: BackendConnection;
  /** Capabilities from the last EHLO on it. */
  caps: Capabilities;
  /** When it came back from a session (reuse), or null for a pre-greeted one. */
  parked: number | null;
}

export interface GreetedPoolOptions {
  /** Connections kept ready per server. */
  idle: number;
  /** Replace an idle connection after this long (before the backend's idle timeout). */
  maxAge: number;
  /** How long a connection back from a session waits for the next one. */
  keepalive: number;
  hostname: string;
  connectTimeout: number;
  replyTimeout: number;
  tls?: BackendTlsPolicy;
}

/** Connects, reads the greeting, sends EHLO (and STARTTLS): the part of a handshake that names no client. */
export async function greet(server: HostPort, opts: Pick<GreetedPoolOptions, 'hostname' | 'connectTimeout' | 'replyTimeout' | 'tls'>): Promise<Greeted> {
  const conn = await BackendConnection.connect(server, opts.connectTimeout);
  try {
    await greeting(conn, opts.replyTimeout);
    let caps = await ehlo(conn, opts.hostname, opts.replyTimeout);
    if (opts.tls) caps = await secureBackend(conn, server, caps, opts.hostname, opts.tls, opts.replyTimeout);
    return { conn, caps, parked: null };
  } catch (err) {
    conn.destroy();
    throw err;
  }
}

/** The ready connections for one server. */
export class GreetedPool {
  readonly #ready: Greeted[] = [];
  #filling = 0;
  #closed = false;
  #sweep: NodeJS.Timeout;
  /** Consecutive failures to fill: back off so a dead server is not hammered. */
  #failures = 0;
  #retry: NodeJS.Timeout | null = null;

  constructor(
    readonly server: HostPort,
    private readonly opts: GreetedPoolOptions,
    /** Whether the server is usable now (health); a pool for a down server stays empty. */
    private readonly usable: () => boolean,
  ) {
    this.#sweep = setInterval(() => this.#recycle(), Math.max(100, Math.floor(Math.min(opts.maxAge / 4, opts.keepalive / 2))));
    this.#sweep.unref();
    this.fill();
  }

  get size(): number {
    return this.#ready.length;
  }

  /**
   * A ready connection, or null (then the caller greets one itself). Refills in the
   * background. The most recently returned goes first, so a surplus after a burst ages out.
   */
  take(): Greeted | null {
    const now = Date.now();
    let g: Greeted | undefined;
    while ((g = this.#ready.pop())) {
      if (g.conn.idle && now - g.conn.born < this.opts.maxAge) break;
      g.conn.destroy();
    }
    this.fill();
    return g ?? null;
  }

  /**
   * For a session whose client said HELO `helo`: a ready connection that greets the backend
   * as us or as that name. One that carried another client's name says EHLO again first, so
   * the backend never takes one client's mail under another client's HELO.
   */
  async acquire(helo: string): Promise<Greeted | null> {
    const g = this.take();
    if (!g || g.conn.helo === null || g.conn.helo === this.opts.hostname || g.conn.helo === helo) return g;
    try {
      g.caps = await ehlo(g.conn, helo, this.opts.replyTimeout);
      return g;
    } catch {
      g.conn.destroy();
      return null;
    }
  }

  /**
   * A connection back from a session that ended cleanly (no transaction open, no reply
   * owed). Kept for the next session unless the server is going away.
   */
  give(g: Greeted): void {
    if (this.#closed || !this.usable() || !g.conn.idle || Date.now() - g.conn.born >= this.opts.maxAge) {
      g.conn.quit();
      return;
    }
    g.parked = Date.now();
    this.#ready.push(g);
  }

  /** Brings the pool back to `idle` ready connections. */
  fill(): void {
    if (this.#closed || this.#retry || !this.usable()) return;
    while (this.#ready.length + this.#filling < this.opts.idle) {
      this.#filling++;
      greet(this.server, this.opts).then(
        (g) => {
          this.#filling--;
          this.#failures = 0;
          if (this.#closed) {
            g.conn.quit();
            return;
          }
          // The backend closing an idle connection (its timeout, a restart) drops it here.
          g.conn.socket.once('close', () => {
            const i = this.#ready.indexOf(g);
            if (i !== -1) this.#ready.splice(i, 1);
          });
          this.#ready.push(g);
        },
        () => {
          this.#filling--;
          this.#failures++;
          // Health checks decide whether the server is down; here we only slow down.
          const delay = Math.min(30_000, 100 * 2 ** Math.min(this.#failures, 8));
          this.#retry = setTimeout(() => {
            this.#retry = null;
            this.fill();
          }, delay);
          this.#retry.unref();
        },
      );
    }
  }

  #recycle(): void {
    const now = Date.now();
    for (let i = this.#ready.length - 1; i >= 0; i--) {
      const g = this.#ready[i]!;
      if (g.conn.closed || now - g.conn.born >= this.opts.maxAge || (g.parked !== null && now - g.parked >= this.opts.keepalive)) {
        this.#ready.splice(i, 1);
        g.conn.quit(); // never just drop it: the MTA would log a lost connection
      }
    }
    this.fill();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweep);
    if (this.#retry) clearTimeout(this.#retry);
    for (const g of this.#ready.splice(0)) g.conn.quit();
  }
}
