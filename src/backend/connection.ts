// One SMTP connection to a backend server. During the handshake replies are awaited one
// at a time (`expect`); in relay mode every reply goes to the session's handler.

import net from 'node:net';
import type { HostPort } from '../config/types.js';
import { ReplyParser, ReplyParseError, type Reply } from '../smtp/reply.js';
import { DeadlineTimer } from '../net/deadline-timer.js';
import { BackendError } from './errors.js';

/** Marks a connection that ended while nobody was waiting on it. */
const CLOSED = new Error('closed');

export interface RelayHandlers {
  onReply(reply: Reply): void;
  /** The connection ended without us asking for it; `err` for resets and parse failures. */
  onClose(err: Error | null): void;
}

/** Encoded once: every session that ends writes it (issue 26). */
const QUIT_LINE = Buffer.from('QUIT\r\n');

/**
 * Every backend socket reads into this one buffer (net's `onread`): the bytes skip the
 * Readable stream (its state, a 'data' event and a tick per read, issue 26) and are copied
 * out at once, since replies keep slices of what they were parsed from. One buffer serves
 * all: a read's callback runs to its end before the next read.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

export class BackendConnection {
  #parser = new ReplyParser();
  #replies: Reply[] = [];
  #waiter: { resolve(r: Reply): void; reject(e: Error): void; ms: number } | null = null;
  /**
   * The connection's one deadline (net/deadline-timer.ts): the connect, then each awaited
   * handshake reply, then QUIT's grace. Cleared when the connection ends.
   */
  readonly #expectBy = new DeadlineTimer(deadlinePassed, this);
  #relay: RelayHandlers | null = null;
  #closed: Error | null = null;
  #ending = false;
  /** Between STARTTLS's 220 and the TLS socket: raw bytes are dropped. */
  #upgrading = false;
  bytesOut = 0;
  /** Set once STARTTLS with the backend succeeded. */
  tls: { version: string; cipher: string; resumed: boolean } | null = null;
  readonly born = Date.now();
  /** The name of the last EHLO sent on it: the backend takes mail as coming from that name. */
  helo: string | null = null;
  /** Sessions it has served (backends.pool.reuse). */
  sessions = 0;
  /** MAIL commands sent on it, across sessions (for the backend's LIMITS MAILMAX). */
  transactions = 0;

  #socket: net.Socket;
  /** Until the socket connects: how `connect`'s promise is settled. */
  #connecting: { resolve(conn: BackendConnection): void; reject(err: Error): void } | null = null;
  // The listeners stay for the socket's life, the connect phase included: removing one
  // deletes a key from the emitter's listener table, which V8 then turns into a dictionary
  // (a map change per connection, and slower lookups for every later event; issue 26).
  readonly #listeners = {
    data: (chunk: Buffer) => this.#onData(chunk),
    connect: () => {
      const c = this.#connecting;
      if (!c) return;
      this.#connecting = null;
      this.#expectBy.stop();
      c.resolve(this);
    },
    // Every socket fault (a reset, EPIPE, ...) is the server's: a BackendError, so a bind
    // fails over from it and counts it against the server.
    error: (err: NodeJS.ErrnoException) => {
      if (this.#connecting) return this.#connectFailed(`connect to ${this.server.text}: ${err.message}`);
      this.#onEnd(new BackendError('BACKEND_CLOSED', `${this.server.text}: ${err.code ?? err.message}`, undefined, { cause: err }));
    },
    close: () => {
      if (this.#connecting) return this.#connectFailed(`connect to ${this.server.text}: closed`);
      this.#onEnd(null);
    },
  };

  private constructor(
    socket: net.Socket,
    readonly server: HostPort,
  ) {
    this.#socket = socket;
    this.#attach(socket);
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  #attach(s: net.Socket): void {
    s.on('data', this.#listeners.data);
    s.on('error', this.#listeners.error);
    s.on('close', this.#listeners.close);
  }

  /**
   * Hands the TCP socket to a TLS client (after the backend's 220 to STARTTLS): returns it
   * with our listeners off, and takes the TLS socket that `secure` resolves to.
   */
  async upgrade(secure: (raw: net.Socket) => Promise<net.Socket>): Promise<void> {
    const raw = this.#socket;
    // RFC 3207 §4.2: nothing the server sent before the handshake counts after it (bytes
    // after its 220 could be a plaintext injection), and the raw socket's reads stop here.
    this.#upgrading = true;
    this.#replies = [];
    this.#parser = new ReplyParser();
    raw.off('data', this.#listeners.data);
    raw.off('error', this.#listeners.error);
    raw.off('close', this.#listeners.close);
    raw.on('error', () => undefined);
    try {
      this.#socket = await secure(raw);
    } catch (err) {
      raw.destroy();
      this.#onEnd(err as Error);
      throw err;
    }
    this.#upgrading = false;
    this.#attach(this.#socket);
  }

  /**
   * A connected connection, within `timeoutMs`, or BACKEND_CONNECT. The connect deadline is
   * the connection's one reply timer, as the handshake's replies and QUIT's grace are.
   */
  static connect(server: HostPort, timeoutMs: number): Promise<BackendConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({
        host: server.host,
        port: server.port,
        noDelay: true,
        onread: {
          buffer: READ_BUFFER,
          callback: (n: number, buf: Uint8Array): boolean => {
            if (!conn.#upgrading) conn.#onData(Buffer.copyBytesFrom(buf, 0, n));
            return true;
          },
        },
      });
      const conn = new BackendConnection(socket, server);
      conn.#connecting = { resolve, reject };
      conn.#expectBy.set(Date.now() + timeoutMs);
      socket.on('connect', conn.#listeners.connect);
    });
  }

  #connectFailed(message: string): void {
    const c = this.#connecting!;
    this.#connecting = null;
    this.#expectBy.clear();
    this.#closed = CLOSED;
    this.#socket.destroy();
    c.reject(new BackendError('BACKEND_CONNECT', message));
  }

  #closedError(): BackendError {
    return new BackendError('BACKEND_CLOSED', `${this.server.text} closed the connection`);
  }

  get closed(): boolean {
    return this.#closed !== null || this.#socket.destroyed;
  }

  /** The next reply, within `timeoutMs`. Handshake mode only. */
  expect(timeoutMs: number): Promise<Reply> {
    const queued = this.#replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#closed) return Promise.reject(this.#closed === CLOSED ? this.#closedError() : this.#closed);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject, ms: timeoutMs };
      this.#expectBy.set(Date.now() + timeoutMs);
    });
  }

  /** The deadline passed (DeadlineTimer): the connect, QUIT's grace, or the awaited reply. */
  deadlinePassed(): void {
    if (this.#connecting) return this.#connectFailed(`connect to ${this.server.text} timed out`);
    if (this.#ending) {
      this.#socket.destroy();
      return;
    }
    const w = this.#waiter;
    if (!w) return;
    this.#waiter = null;
    w.reject(new BackendError('BACKEND_TIMEOUT', `no reply from ${this.server.text} within ${w.ms} ms`));
  }

  /** Sends a command and waits for its reply (not async: expect's promise is the one awaited). */
  command(line: string, timeoutMs: number): Promise<Reply> {
    if (line.startsWith('EHLO ')) this.helo = line.slice(5);
    this.write(line + '\r\n');
    return this.expect(timeoutMs);
  }

  write(data: string | Buffer): boolean {
    this.bytesOut += data.length;
    return this.#socket.write(data);
  }

  /** Switches to relay mode: from now on replies go to `handlers`. */
  relay(handlers: RelayHandlers): void {
    this.#relay = handlers;
    const early = this.#replies;
    this.#replies = [];
    for (const r of early) handlers.onReply(r);
  }

  /** Leaves relay mode between sessions: nothing is owed, and anything the server says now is kept for `idle`. */
  park(): void {
    this.#relay = null;
  }

  /** Open, and quiet since it was parked (a server about to close says 421 first). */
  get idle(): boolean {
    return !this.closed && !this.#ending && this.#replies.length === 0 && this.#waiter === null;
  }

  /** Polite end: QUIT, then close once the server answers or after `graceMs`. */
  quit(graceMs = 2000): void {
    if (this.#ending || this.closed) return;
    this.#ending = true;
    this.#relay = null;
    this.#socket.write(QUIT_LINE);
    this.#socket.end();
    // The deadline is now the grace: deadlinePassed destroys the socket once it passes.
    this.#expectBy.set(Date.now() + graceMs);
  }

  /** Abort: the server sees the connection drop (and so discards any open transaction). */
  destroy(): void {
    this.#ending = true;
    this.#relay = null;
    this.#socket.destroy();
  }

  #onData(chunk: Buffer): void {
    let replies: Reply[];
    try {
      replies = this.#parser.push(chunk);
    } catch (err) {
      const e =
        err instanceof ReplyParseError
          ? new BackendError('BACKEND_PROTOCOL', `${this.server.text} sent a malformed reply: ${err.message}: ${JSON.stringify(err.line)}`)
          : (err as Error);
      this.#socket.destroy();
      this.#onEnd(e);
      return;
    }
    for (const r of replies) {
      if (this.#relay) this.#relay.onReply(r);
      else if (this.#waiter) {
        const w = this.#waiter;
        this.#waiter = null;
        this.#expectBy.stop();
        w.resolve(r);
      } else if (!this.#ending) this.#replies.push(r);
    }
  }

  #onEnd(err: Error | null): void {
    this.#expectBy.clear();
    if (this.#closed) return;
    // Most connections end normally with nobody waiting: build the error only when needed
    // (an Error captures a stack, which shows up in profiles at thousands of sessions/s).
    this.#closed = err ?? (this.#waiter ? this.#closedError() : CLOSED);
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.reject(this.#closed);
    }
    const relay = this.#relay;
    this.#relay = null;
    if (relay && !this.#ending) relay.onClose(err);
  }
}

const deadlinePassed = (c: BackendConnection): void => c.deadlinePassed();
