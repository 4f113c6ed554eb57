// How the client leaves, and what that is called. After QUIT (RFC 5321 §4.1.1.10) the 221
// goes out, then our side half-closes and the socket keeps reading for a short linger,
// because how the peer ends is what tells:
//  - its FIN: a clean close, nothing to name;
//  - a reset before its FIN: `rst_after_quit`, whether the reset came before, during or
//    after our 221 (Outlook sends QUIT and resets without reading; on a real network the
//    221 is long in the kernel when the reset arrives, so only a linger sees it);
//  - its FIN before our 221 went out: a half-close (Exim and Postfix send QUIT and shut their
//    side, still reading), or the peer gone; which one, the 221's fate tells: a reset in
//    answer to it is `quit_no_wait` (the peer did not wait for it), no reset is nothing.
// Without QUIT: a hang-up (`no_quit` when work was left undone, `disconnect_in_data` in a
// body) or a reset. The linger never delays the session record by more than LINGER_MS.
//
// Under TLS our half-close is not silent: close_notify is a record the client has to read.
// A client that read the 221 and closes (smtplib, swaks) while our close_notify sits unread
// in its receive buffer makes its kernel answer with a reset (RFC 2525 §2.17), which looked
// like `rst_after_quit` (issue 23: smtplib over TLS, 41 of 50 sessions). So under TLS nothing
// follows the 221 until the client's FIN, or QUIT_FIN_WAIT_MS for a client that waits for
// our close (either side may close after the 221, RFC 5321 §4.1.1.10); then close_notify and
// FIN, and the linger goes on for what is left of LINGER_MS. A plain FIN carries no data, so
// without TLS our side still ends at once. A reset before the client's FIN now means the
// client did not wait for what it was sent.

import type { AnomalyKind, CloseReason } from '../observe/records.js';

/** Longest wait for the peer's FIN or reset after the 221 (after our half-close, without TLS). */
export const LINGER_MS = 2000;
/**
 * Under TLS, longest wait after the 221 for the client's FIN before our close_notify and
 * FIN. Measured with the false-positive corpus (anomaly-precision.test.ts, workers: 2, on
 * the 2-core test machine at a load average of 15 to 21): over 250 TLS sessions that sent
 * QUIT (smtplib STARTTLS and SMTP_SSL, swaks -tls and --tls-on-connect, Postfix's smtp), the
 * client's FIN came a median of 1.3 ms, at the 99th percentile 50 ms and at most 137 ms
 * after the 221 reached the kernel; none waited for our close. 300 ms is twice the worst
 * seen, and is all a client that does wait for our close (RFC 5321 §4.1.1.10 allows it)
 * pays.
 */
export const QUIT_FIN_WAIT_MS = 300;

export interface FarewellHost {
  anomaly(kind: AnomalyKind, detail: string): void;
  /** The client left without QUIT: name it from the session's state, and stop taking input. */
  gone(reason: CloseReason, why?: string): void;
  /** The close reason so far, or null. */
  readonly reason: CloseReason | null;
  /** The client socket is TLS now (implicit, or after STARTTLS). */
  readonly secure: boolean;
  /** The session is closing: the close guard starts, reading resumes (client-io.ts). */
  closing(): void;
  /** Our side half-closes (FIN, or close_notify and FIN). */
  end(): void;
  /** The socket is closed at once. */
  destroy(): void;
  /** Runs the session's one timer for `ms`; when it fires the session calls `lingerOver`. */
  linger(ms: number): void;
  /** Ends the session: its record is written. */
  finish(reason: CloseReason): void;
}

const isReset = (err: NodeJS.ErrnoException) => err.code === 'ECONNRESET' || err.code === 'EPIPE';

export class Farewell {
  #quit = false;
  #flushed = false;
  #peerFin = false;
  /** The peer's FIN came before our 221 was written. */
  #finFirst = false;
  /** Under TLS, the 221 is out and our close_notify waits for the peer's FIN (QUIT_FIN_WAIT_MS). */
  #holding = false;

  constructor(private readonly host: FarewellHost) {}

  /** QUIT was read. */
  get quitSeen(): boolean {
    return this.#quit;
  }

  quit(): void {
    this.#quit = true;
  }

  /** The 221 reached the kernel: half-close (under TLS, once the peer's FIN came), and linger for the peer's answer. */
  flushed(): void {
    this.#flushed = true;
    if (this.host.secure && !this.#peerFin) {
      this.#holding = true;
      this.host.closing();
      this.host.linger(QUIT_FIN_WAIT_MS);
      return;
    }
    this.host.end();
    this.host.linger(LINGER_MS);
  }

  /** Our close_notify and FIN go now; the linger goes on for the rest of LINGER_MS. */
  #release(): void {
    this.#holding = false;
    this.host.end();
    this.host.linger(LINGER_MS - QUIT_FIN_WAIT_MS);
  }

  /**
   * Shutdown (the grace period is over): past the 221 nothing more is written, no 421; a
   * held close_notify goes now. True when the session is past its 221.
   */
  shutdown(): boolean {
    if (!this.#flushed) return false;
    if (this.#holding) this.#release();
    return true;
  }

  /** After the 221, waiting for the peer's FIN or reset. */
  get lingering(): boolean {
    return this.#flushed;
  }

  /** The wait for the peer's FIN is over: our side ends. Neither FIN nor reset within the linger: close, nothing to name. */
  lingerOver(): void {
    if (this.#holding) return this.#release();
    this.host.destroy();
  }

  /** The peer's FIN. */
  onEnd(): void {
    if (this.#quit) {
      // Our side ends once the 221 is out (flushed), whatever the peer does meanwhile.
      if (!this.#flushed && !this.#peerFin) this.#finFirst = true;
      this.#peerFin = true;
      if (this.#holding) this.#release();
      return;
    }
    if (this.host.reason === null) this.host.gone('client_closed');
    this.host.end();
  }

  onError(err: NodeJS.ErrnoException): void {
    if (this.#quit && isReset(err)) {
      if (!this.#peerFin) {
        const when = !this.#flushed ? 'before the 221 was written' : this.#holding ? 'after the 221, with nothing sent after it' : 'after the 221 and our close';
        this.host.anomaly('rst_after_quit', `${err.code} (${err.syscall ?? '?'}) after QUIT, ${when}, before the client's FIN`);
      } else if (this.#finFirst) {
        this.host.anomaly('quit_no_wait', 'client closed after QUIT before the 221 was written');
      }
    } else if (this.host.reason === null) {
      this.host.gone(isReset(err) ? 'client_reset' : 'error', err.message);
    }
    this.host.finish(this.host.reason ?? 'error');
  }

  onClose(): void {
    if (this.host.reason === null && !this.#quit) this.host.gone('client_closed');
    this.host.finish(this.#quit ? 'quit' : 'client_closed');
  }
}
