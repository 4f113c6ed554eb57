// A MAIL held back and sent with the next command (a RCPT, normally), in one write: one
// round trip fewer per message with a client that waits for each reply, as a server with
// Postfix's smtpd_delay_reject answers a refused sender at RCPT. If the backend refuses the
// MAIL, the replies to what followed it (503: no MAIL) become that refusal, so the client
// learns why, in the place a delayed rejection has. The state of it; the binding sends.

import type { Reply } from '../smtp/reply.js';
import type { BackendHandler } from './reply-queue.js';

export class HeldMail {
  #held: { line: string; handler: BackendHandler } | null = null;
  /** The backend's refusal of the held MAIL once sent, or null. */
  #refusal: Reply | null = null;
  /** The held MAIL of this transaction went out: replies after it may stand for its refusal. */
  #sent = false;

  /** A MAIL to send with the next command; its reply goes to `handler`. */
  hold(line: string, handler: BackendHandler): void {
    this.#held = { line, handler };
    this.#refusal = null;
    this.#sent = false;
  }

  /** A MAIL waits to go out. */
  get waiting(): boolean {
    return this.#held !== null;
  }

  /** Takes the held MAIL to send now: its line, and a handler for its reply that notes a refusal (no client reply is owed for it). */
  take(): { line: string; handler: BackendHandler } {
    const held = this.#held!;
    this.#held = null;
    this.#sent = true;
    return {
      line: held.line,
      handler: (r) => {
        held.handler(r);
        if (r.code >= 300) this.#refusal = r;
        return null;
      },
    };
  }

  /** After a held MAIL went out, a refusal of it stands in for the failures that followed it. */
  after(handler: BackendHandler): BackendHandler {
    if (!this.#sent) return handler;
    return (r) => handler(this.#refusal && r.code >= 400 ? this.#refusal : r);
  }

  /** This reply is the refusal of the held MAIL (which no client reply carried). */
  refused(r: Reply): boolean {
    return this.#refusal === r;
  }

  /** A new transaction (RSET, EHLO, QUIT...): a held MAIL is forgotten, never sent. */
  drop(): void {
    this.#held = null;
    this.#refusal = null;
    this.#sent = false;
  }
}
