// The decision seam: asynchronous steps a session awaits before a backend is spent
// (screening during the greeting wait, routing when the backend is chosen). Each step has
// its own deadline and is cancelled when the session ends; it settles exactly once, with
// its verdict, or with what its timeout or its failure means, so no decision can hold a
// session (and its admission slot) for ever.

import type { AuthRecord, CloseReason, Endpoint, TlsRecord } from '../observe/records.js';

/** What a decision says, and what the session does with it. */
export type Verdict =
  /** Go on as if the step were not there. */
  | { readonly kind: 'pass' }
  /** Answer the step's place with `reply` (e.g. `550 5.7.1` to a RCPT) and go on. */
  | { readonly kind: 'reply'; readonly reply: string }
  /** Answer with `reply` after what is owed, then end the session (the usual close path). */
  | { readonly kind: 'reject'; readonly reply: string; readonly reason: CloseReason }
  /** End the session now: `reply` ahead of anything owed (e.g. `521 5.7.1`), then close. */
  | { readonly kind: 'drop'; readonly reply: string; readonly reason: CloseReason };

export const PASS: Verdict = { kind: 'pass' };

/** What a decision may look at: the session as it stands when the step runs. */
export interface SessionFacts {
  readonly id: string;
  readonly listener: string;
  /** The real client (after PROXY / XCLIENT). */
  readonly client: Endpoint;
  readonly helo: string | null;
  readonly tls: TlsRecord | null;
  readonly auth: AuthRecord | null;
  /** The sender of the transaction being opened (the `mail` point), else null. */
  readonly from: string | null;
}

/** What a greeting-time decision that runs the greet wait itself (screening) may ask of the greeting. */
export interface GreetControl {
  /**
   * Sends the `220-` teaser now (once) and resolves `ms` later, or at once when `signal`
   * aborts (a DNSWL listing ends the wait early).
   */
  teaser(ms: number, signal: AbortSignal): Promise<void>;
  /** The client talked before the greeting. */
  pregreeted(): boolean;
}

export interface Decision {
  /** For logs: `screen`, `route`, ... */
  readonly name: string;
  /**
   * Greeting point: the decision runs the greet wait itself (through `greet`), instead of
   * `smtp.pregreet`, and judges an early talker itself; the 220 follows its verdict at once.
   */
  readonly ownsGreetWait?: boolean;
  readonly deadlineMs: number;
  /** What the session does when the step outlives its deadline. */
  readonly onTimeout: Verdict;
  /** What the session does when the step fails (a rejected promise, a throw). */
  readonly onError: Verdict;
  /** The step; `signal` aborts when the session ends or the deadline passes. */
  decide(facts: SessionFacts, signal: AbortSignal, greet?: GreetControl): Promise<Verdict>;
}

/** Where decisions plug into a session; each returns null when it has nothing to decide. */
export interface DecisionPoints {
  /** At accept, while the greeting waits (postscreen's greet wait). */
  greeting?(facts: SessionFacts): Decision | null;
  /** At the first command that needs a backend (MAIL), before one is bound. */
  mail?(facts: SessionFacts): Decision | null;
}

export type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly timeout: boolean; readonly error: unknown };

/** A step's deadline passed. */
export class DecisionTimeout extends Error {
  override name = 'DecisionTimeout';
  readonly code = 'ERR_DECISION_TIMEOUT';
  constructor(step: string, ms: number) {
    super(`${step} did not settle within ${ms} ms`);
  }
}

/** The bounded asynchronous steps of one session. */
export class PendingSteps {
  readonly #live = new Set<() => void>();

  /**
   * Runs `step` with a deadline; `settle` is called exactly once with its outcome, unless
   * `abort()` (the session ended) came first, in which case it is never called.
   */
  run<T>(name: string, deadlineMs: number, step: (signal: AbortSignal) => Promise<T>, settle: (r: Settled<T>) => void): void {
    const ac = new AbortController();
    let open = true;
    const cancel = () => {
      if (!open) return;
      open = false;
      clearTimeout(timer);
      ac.abort();
    };
    const done = (r: Settled<T>) => {
      if (!open) return;
      open = false;
      clearTimeout(timer);
      this.#live.delete(cancel);
      if (!r.ok) ac.abort(r.error);
      settle(r);
    };
    const timer = setTimeout(() => done({ ok: false, timeout: true, error: new DecisionTimeout(name, deadlineMs) }), deadlineMs);
    this.#live.add(cancel);
    let p: Promise<T>;
    try {
      p = step(ac.signal);
    } catch (error) {
      p = Promise.reject(error);
    }
    p.then(
      (value) => done({ ok: true, value }),
      (error: unknown) => done({ ok: false, timeout: false, error }),
    );
  }

  /** Steps still running. */
  get size(): number {
    return this.#live.size;
  }

  /** The session ended: every running step is aborted and will never settle. */
  abort(): void {
    for (const cancel of this.#live) cancel();
    this.#live.clear();
  }
}

/** One line for a log record. */
export function describeStepError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The verdict a decision's outcome stands for. */
export function verdictOf(d: Decision, r: Settled<Verdict>): Verdict {
  if (r.ok) return r.value;
  return r.timeout ? d.onTimeout : d.onError;
}
