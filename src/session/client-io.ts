// The client's socket as the session uses it: events in, writes out (counted), the
// STARTTLS swap to a TLS socket, one timer for whichever timeout is in force, and flow
// control: reading stops while input piles up behind an asynchronous step, or while the
// backend cannot take more of a body. Once our side ends, a guard bounds how long the
// socket may stay open, whatever the peer does (issue 21, B2).

import type net from 'node:net';
import type tls from 'node:tls';
import type { EventEmitter } from 'node:events';
import type { TlsInfo, TlsTerminator } from '../tls/index.js';
import { DeadlineTimer } from '../net/deadline-timer.js';

/**
 * Longest a session may stay open once it has begun to close: the 421 or 221 written, our
 * FIN sent. Past it the socket is destroyed, so the record, the per-IP slot and the fd
 * never wait on a peer that neither reads nor closes. Longer than the QUIT linger
 * (farewell.ts, 2 s, which under TLS starts with the wait for the client's FIN), so a clean
 * close is never cut short.
 */
export const CLOSE_GUARD_MS = 5000;
/**
 * Bytes read once the session is closing, past which reading stops until the guard: reading
 * goes on so the peer's FIN or reset is seen, but a peer that keeps sending is not
 * listening, and a flood must not be read at full speed meanwhile.
 */
export const CLOSE_READ_MAX = 64 * 1024;

export interface ClientEvents {
  data(chunk: Buffer): void;
  end(): void;
  error(err: NodeJS.ErrnoException): void;
  close(): void;
  timeout(): void;
  /** The client has read what was written: its unsent output fell to nothing. */
  drain(): void;
}

export class ClientIo {
  #socket: net.Socket;
  bytesIn = 0;
  bytesOut = 0;
  /** The one timeout in force (net/deadline-timer.ts). */
  readonly #deadline = new DeadlineTimer(clientTimeout, this);
  #timerMs = 0;
  /** A body's pace (limits.min_data_rate, bytes/s); 0 outside bodies or when off. */
  #rate = 0;
  /** Reading stopped because input piled up behind an asynchronous step. */
  #pausedForPile = false;
  /** Reading stopped until the backend drains (a body it cannot take as fast). */
  #pausedForBackend = false;
  /** The session is closing: reading is never paused again, and the guard runs. */
  #guard: NodeJS.Timeout | null = null;
  /** Bytes read since the session began closing. */
  #readClosing = 0;

  readonly #listeners = {
    data: (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      if (this.#guard && (this.#readClosing += chunk.length) > CLOSE_READ_MAX) this.#apply();
      this.events.data(chunk);
    },
    end: () => this.events.end(),
    error: (err: NodeJS.ErrnoException) => this.events.error(err),
    close: () => this.events.close(),
    drain: () => this.events.drain(),
  };

  constructor(
    socket: net.Socket,
    private events: ClientEvents,
  ) {
    this.#socket = socket;
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  attach(): void {
    const s = this.#socket;
    // A TLS socket's TCP socket has it already (the listener's noDelay, or this call before
    // STARTTLS): through the TLS socket it would be one more setsockopt per session.
    if (!this.secure) s.setNoDelay?.(true);
    s.on('data', this.#listeners.data);
    s.on('end', this.#listeners.end);
    s.on('error', this.#listeners.error);
    s.on('close', this.#listeners.close);
    s.on('drain', this.#listeners.drain);
    // The client's FIN can come before the session does: with a PROXY header, read by
    // proxy-in.ts while admission was still pending, 'end' went to nobody. Listeners allow
    // half-open connections, so nothing else would ever close the socket (greeting timeout).
    if (s.readableEnded) process.nextTick(this.#listeners.end);
  }

  #detach(s: net.Socket): void {
    s.off('data', this.#listeners.data);
    s.off('end', this.#listeners.end);
    s.off('error', this.#listeners.error);
    s.off('close', this.#listeners.close);
    s.off('drain', this.#listeners.drain);
  }

  /** The socket is TLS (implicit, or after STARTTLS): ending it sends close_notify first. */
  get secure(): boolean {
    return (this.#socket as Partial<tls.TLSSocket>).encrypted === true;
  }

  /** Bytes written that the client has not taken yet. */
  get unsent(): number {
    return this.#socket.writableLength;
  }

  /** Writes the chunks in one go; `done` once they reached the kernel. */
  write(chunks: (string | Buffer)[], done: (() => void) | null): void {
    const s = this.#socket;
    if (s.destroyed || !s.writable) return;
    // One chunk (most turns) goes without cork, whose uncork takes the stream's buffered-write path.
    const cork = chunks.length > 1;
    if (cork) s.cork();
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      this.bytesOut += c.length;
      if (i === chunks.length - 1 && done) s.write(c, (err) => (err ? undefined : done()));
      else s.write(c);
    }
    if (cork) s.uncork();
  }

  /** Our side half-closes (after what was written); the session is closing from here on. */
  end(): void {
    this.closing();
    this.#socket.end();
  }

  destroy(): void {
    this.clearGuard();
    this.#socket.destroy();
  }

  /**
   * The session has ended: events the socket still emits go nowhere, and the socket (which
   * Node may keep until a full collection: a TLS socket's native side does) no longer holds
   * the session through our listeners (issue 26).
   */
  release(): void {
    this.events = RELEASED;
  }

  /**
   * The session has decided to end: from now on its socket is destroyed within
   * CLOSE_GUARD_MS. Reading resumes whatever paused it (a pile-up, a backend that will never
   * drain), so the peer's FIN or reset is seen: bytes read now are discarded by the session,
   * up to CLOSE_READ_MAX (then reading stops again, and the guard ends it).
   */
  closing(): void {
    if (this.#guard) return;
    this.#guard = setTimeout(() => {
      this.#guard = null;
      this.#socket.destroy();
      // The session ends even if the socket's listeners are detached (STARTTLS swap).
      this.events.close();
    }, CLOSE_GUARD_MS);
    if (!this.paused) return;
    this.#pausedForPile = false;
    this.#pausedForBackend = false;
    this.#apply();
  }

  clearGuard(): void {
    if (this.#guard) clearTimeout(this.#guard);
    this.#guard = null;
  }

  // ---- timers --------------------------------------------------------------------------

  get timerMs(): number {
    return this.#timerMs;
  }

  /**
   * (Re)starts the one timeout in force: `ms` from now. The timer is not re-created per
   * command or chunk: one armed earlier than the new deadline re-arms when it fires.
   */
  setTimer(ms: number): void {
    this.#rate = 0;
    this.#timerMs = ms;
    this.#deadline.set(Date.now() + ms);
  }

  /**
   * A message body starts (after 354, or a BDAT chunk): its deadline is `ms` from now and,
   * with `rate` > 0, moves as Postfix's smtpd_min_data_rate says: each read takes its
   * elapsed time off and adds a second per `rate` bytes, never past `ms` from now.
   */
  startBody(ms: number, rate: number): void {
    this.setTimer(ms);
    this.#rate = rate;
  }

  /** `n` body bytes arrived. */
  bodyBytes(n: number): void {
    const now = Date.now();
    const at = this.#deadline.at;
    // No deadline in force (the session is ending): nothing to move.
    if (at === 0) return;
    if (this.#rate === 0) return this.#deadline.set(now + this.#timerMs);
    this.#deadline.set(Math.min(now + this.#timerMs, at + (n * 1000) / this.#rate));
  }

  /** The timeout in force passed (DeadlineTimer). */
  timedOut(): void {
    this.events.timeout();
  }

  clearTimer(): void {
    this.#deadline.clear();
  }

  // ---- flow control --------------------------------------------------------------------

  /** Stops reading while `pile` (input waiting behind an asynchronous step), resumes after. */
  pile(pile: boolean): void {
    if (pile === this.#pausedForPile || this.#guard) return;
    this.#pausedForPile = pile;
    this.#apply();
  }

  /** A slow backend must not grow our memory: stop reading the client until `source` drains. */
  pauseUntilDrain(source: EventEmitter): void {
    if (this.#pausedForBackend || this.#guard) return;
    this.#pausedForBackend = true;
    this.#apply();
    source.once('drain', () => {
      this.#pausedForBackend = false;
      this.#apply();
    });
  }

  get paused(): boolean {
    return this.#pausedForPile || this.#pausedForBackend;
  }

  #apply(): void {
    const s = this.#socket;
    if (s.destroyed) return;
    if (this.paused || this.#readClosing > CLOSE_READ_MAX) s.pause();
    else s.resume();
  }

  // ---- STARTTLS ------------------------------------------------------------------------

  /**
   * Stop reading now, before the 220 to STARTTLS leaves: whatever arrives from here on is
   * the client's TLS handshake and waits in the socket for it (RFC 3207 §4.2).
   */
  holdForTls(): void {
    const raw = this.#socket;
    raw.pause();
    this.#detach(raw);
    raw.on('error', () => undefined);
    this.clearTimer();
  }

  /** The server side of the handshake on the held socket; from then on the session reads the TLS socket. */
  async upgrade(terminator: TlsTerminator, timeoutMs: number): Promise<TlsInfo> {
    const raw = this.#socket;
    try {
      const { socket, info } = await terminator.accept(raw, { timeoutMs });
      this.#socket = socket;
      this.attach();
      return info;
    } catch (err) {
      raw.destroy();
      throw err;
    }
  }

  /** Reading again after the upgrade. */
  resume(): void {
    this.#socket.resume();
  }
}

const clientTimeout = (io: ClientIo): void => io.timedOut();

const ignore = (): void => undefined;
/** The events of an ended session: none of them matters any more. */
const RELEASED: ClientEvents = { data: ignore, end: ignore, error: ignore, close: ignore, timeout: ignore, drain: ignore };
