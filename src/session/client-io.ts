// The client's socket as the session uses it: events in, writes out (counted), the
// STARTTLS swap to a TLS socket, one timer for whichever timeout is in force, and flow
// control: reading stops while input piles up behind an asynchronous step, or while the
// backend cannot take more of a body.

import type net from 'node:net';
import type { EventEmitter } from 'node:events';
import type { TlsInfo, TlsTerminator } from '../tls/index.js';

export interface ClientEvents {
  data(chunk: Buffer): void;
  end(): void;
  error(err: NodeJS.ErrnoException): void;
  close(): void;
  timeout(): void;
}

export class ClientIo {
  #socket: net.Socket;
  bytesIn = 0;
  bytesOut = 0;
  #timer: NodeJS.Timeout | null = null;
  #timerMs = 0;
  /** Reading stopped because input piled up behind an asynchronous step. */
  #pausedForPile = false;
  /** Reading stopped until the backend drains (a body it cannot take as fast). */
  #pausedForBackend = false;

  readonly #listeners = {
    data: (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.events.data(chunk);
    },
    end: () => this.events.end(),
    error: (err: NodeJS.ErrnoException) => this.events.error(err),
    close: () => this.events.close(),
  };

  constructor(
    socket: net.Socket,
    private readonly events: ClientEvents,
  ) {
    this.#socket = socket;
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  attach(): void {
    const s = this.#socket;
    s.setNoDelay?.(true);
    s.on('data', this.#listeners.data);
    s.on('end', this.#listeners.end);
    s.on('error', this.#listeners.error);
    s.on('close', this.#listeners.close);
  }

  #detach(s: net.Socket): void {
    s.off('data', this.#listeners.data);
    s.off('end', this.#listeners.end);
    s.off('error', this.#listeners.error);
    s.off('close', this.#listeners.close);
  }

  /** Writes the chunks in one go; `done` once they reached the kernel. */
  write(chunks: (string | Buffer)[], done: (() => void) | null): void {
    const s = this.#socket;
    if (s.destroyed || !s.writable) return;
    s.cork();
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      this.bytesOut += c.length;
      if (i === chunks.length - 1 && done) s.write(c, (err) => (err ? undefined : done()));
      else s.write(c);
    }
    s.uncork();
  }

  end(): void {
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** A client that stops reading must not hold the session once we have given up on it. */
  destroySoon(ms: number): void {
    const s = this.#socket;
    setTimeout(() => s.destroy(), ms).unref();
  }

  // ---- timers --------------------------------------------------------------------------

  get timerMs(): number {
    return this.#timerMs;
  }

  /** (Re)starts the one timeout in force. */
  setTimer(ms: number): void {
    if (this.#timer && this.#timerMs === ms) {
      this.#timer.refresh();
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerMs = ms;
    this.#timer = setTimeout(() => this.events.timeout(), ms);
  }

  clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  // ---- flow control --------------------------------------------------------------------

  /** Stops reading while `pile` (input waiting behind an asynchronous step), resumes after. */
  pile(pile: boolean): void {
    if (pile === this.#pausedForPile) return;
    this.#pausedForPile = pile;
    this.#apply();
  }

  /** A slow backend must not grow our memory: stop reading the client until `source` drains. */
  pauseUntilDrain(source: EventEmitter): void {
    if (this.#pausedForBackend) return;
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
    if (this.paused) s.pause();
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
