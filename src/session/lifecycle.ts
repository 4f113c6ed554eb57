// The session's phases, in one place, and the transitions allowed between them. Pure: the
// session asks to move, this says whether it may; every ending goes through `end` (the
// reason is set once, by the first cause) and then `closed` (the record is written once).
//
//   accepted ─► screening ─► greeted ─► front ─► relaying
//                    │            │       ▲  │      │
//                    │            │       └──┼──────┘  (STARTTLS, AUTH, XCLIENT: start over)
//                    ▼            ▼          ▼      ▼
//                          closing (any cause) / quitting (QUIT) ─► closed
//
// - accepted: the connection is the session's; nothing written yet.
// - screening: decisions before the greeting run (postscreen's greet wait, DNS lookups):
//   a `220-` teaser may be out, the final 220 is not.
// - greeted: the 220 is out; no HELO/EHLO yet.
// - front: the client said HELO/EHLO; Postern answers it itself (STARTTLS, AUTH, NOOP...).
// - relaying: a backend is bound to the session (RFC 5321 transactions go through it).
// - quitting: QUIT was read: the 221 and the linger (farewell.ts).
// - closing: the session decided to end (limit, timeout, error, backend lost, shutdown) or
//   the client left: what is owed is flushed, then the socket closes within a bound.
// - closed: both sockets gone, the record written, admission released.

import type { CloseReason } from '../observe/records.js';

export type Phase = 'accepted' | 'screening' | 'greeted' | 'front' | 'relaying' | 'quitting' | 'closing' | 'closed';

export const PHASES: readonly Phase[] = ['accepted', 'screening', 'greeted', 'front', 'relaying', 'quitting', 'closing', 'closed'];

/** Where each phase may go. Ending (closing, closed) is possible from everywhere but closed. */
export const TRANSITIONS: Readonly<Record<Phase, readonly Phase[]>> = {
  accepted: ['screening', 'greeted', 'closing', 'closed'],
  screening: ['greeted', 'closing', 'closed'],
  // XCLIENT before any HELO tells a HELO name: straight to front.
  greeted: ['front', 'quitting', 'closing', 'closed'],
  // STARTTLS or XCLIENT forget the HELO (RFC 3207 §4.2): greeted again.
  front: ['greeted', 'relaying', 'quitting', 'closing', 'closed'],
  // STARTTLS, AUTH or XCLIENT after a bind: the backend was told the old story, unbound.
  relaying: ['greeted', 'front', 'quitting', 'closing', 'closed'],
  quitting: ['closing', 'closed'],
  closing: ['closed'],
  closed: [],
};

export class LifecycleError extends Error {
  override name = 'LifecycleError';
  readonly code = 'ERR_SESSION_TRANSITION';
  constructor(
    readonly from: Phase,
    readonly to: Phase,
  ) {
    super(`session cannot go from ${from} to ${to}`);
  }
}

export class Lifecycle {
  #phase: Phase = 'accepted';
  #reason: CloseReason | null = null;

  constructor(private readonly changed: (from: Phase, to: Phase) => void = () => undefined) {}

  get phase(): Phase {
    return this.#phase;
  }

  /** Why the session ends (the first cause given), or null while it runs. */
  get reason(): CloseReason | null {
    return this.#reason;
  }

  /** Quitting, closing or closed: no new command is taken. */
  get ending(): boolean {
    return this.#phase === 'quitting' || this.#phase === 'closing' || this.#phase === 'closed';
  }

  get closed(): boolean {
    return this.#phase === 'closed';
  }

  /** Whether `to` is allowed from here (moving to the phase it is in is a no-op, allowed). */
  may(to: Phase): boolean {
    return to === this.#phase || TRANSITIONS[this.#phase].includes(to);
  }

  /** Moves to `to`; a transition the table does not allow is a bug in the caller. */
  to(to: Phase): void {
    if (to === this.#phase) return;
    if (!TRANSITIONS[this.#phase].includes(to)) throw new LifecycleError(this.#phase, to);
    const from = this.#phase;
    this.#phase = to;
    this.changed(from, to);
  }

  /** Moves to `to` only where that is allowed (a late event after an ending is ignored). */
  toIfAllowed(to: Phase): boolean {
    if (!this.may(to)) return false;
    this.to(to);
    return true;
  }

  /** QUIT was read. */
  quit(): void {
    this.#reason ??= 'quit';
    if (this.#phase !== 'closing' && this.#phase !== 'closed') this.to('quitting');
  }

  /** The session ends for `reason` (kept only if no cause was given before). */
  end(reason: CloseReason): void {
    this.#reason ??= reason;
    if (this.#phase !== 'closing' && this.#phase !== 'closed') this.to('closing');
  }

  /** The end: true the first time (the caller writes the record), false after. */
  close(reason: CloseReason): boolean {
    if (this.#phase === 'closed') return false;
    this.#reason ??= reason;
    this.to('closed');
    return true;
  }
}
