// How the client leaves, and what that is called. After QUIT (RFC 5321 §4.1.1.10) the 221
// goes out, then our side half-closes (under TLS, close_notify first) and the socket keeps
// reading for a short linger, because how the peer ends is what tells:
//  - its FIN: a clean close, nothing to name;
//  - a reset before its FIN: `rst_after_quit`, whether the reset came before, during or
//    after our 221 (Outlook sends QUIT and resets without reading; on a real network the
//    221 is long in the kernel when the reset arrives, so only a linger sees it);
//  - its FIN before our 221 went out: a half-close (Exim and Postfix send QUIT and shut their
//    side, still reading), or the peer gone; which one, the 221's fate tells: a reset in
//    answer to it is `quit_no_wait` (the peer did not wait for it), no reset is nothing.
// Without QUIT: a hang-up (`no_quit` when work was left undone, `disconnect_in_data` in a
// body) or a reset. The linger never delays the session record by more than LINGER_MS.

import type { AnomalyKind, CloseReason } from '../observe/records.js';

/** Longest wait for the peer's FIN or reset after our half-close. */
export const LINGER_MS = 2000;

export interface FarewellHost {
  anomaly(kind: AnomalyKind, detail: string): void;
  /** The client left without QUIT: name it from the session's state, and stop taking input. */
  gone(reason: CloseReason, why?: string): void;
  /** The close reason so far, or null. */
  readonly reason: CloseReason | null;
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

  constructor(private readonly host: FarewellHost) {}

  /** QUIT was read. */
  get quitSeen(): boolean {
    return this.#quit;
  }

  quit(): void {
    this.#quit = true;
  }

  /** The 221 reached the kernel: half-close, and linger for the peer's answer. */
  flushed(): void {
    this.#flushed = true;
    this.host.end();
    this.host.linger(LINGER_MS);
  }

  /** After the 221, waiting for the peer's FIN or reset. */
  get lingering(): boolean {
    return this.#flushed;
  }

  /** Neither FIN nor reset within the linger: close, nothing to name. */
  lingerOver(): void {
    this.host.destroy();
  }

  /** The peer's FIN. */
  onEnd(): void {
    if (this.#quit) {
      // Our side ends once the 221 is out (flushed), whatever the peer does meanwhile.
      if (!this.#flushed && !this.#peerFin) this.#finFirst = true;
      this.#peerFin = true;
      return;
    }
    if (this.host.reason === null) this.host.gone('client_closed');
    this.host.end();
  }

  onError(err: NodeJS.ErrnoException): void {
    if (this.#quit && isReset(err)) {
      if (!this.#peerFin) {
        const when = this.#flushed ? 'after the 221 was written' : 'before the 221 was written';
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
