// A session's asynchronous steps, bounded: a hold (a verifier, a cluster decision) that
// answers in its command's place, and the decision seam's steps (decision.ts), whose
// verdicts are acted on here. Each step has a deadline and ends with the session
// (`abort`), so none can keep a session, or its admission slot, for ever.

import type { Logger } from '../observe/logger.js';
import type { CloseReason } from '../observe/records.js';
import { describeStepError as describe, PendingSteps, verdictOf, type Decision, type GreetControl, type SessionFacts, type Verdict } from './decision.js';
import type { Input } from './input.js';
import * as R from './replies.js';
import type { ReplyQueue } from './reply-queue.js';

/** What the steps need of their session. */
export interface StepsHost {
  readonly queue: ReplyQueue;
  readonly input: Pick<Input, 'wait' | 'resume'>;
  readonly hostname: string;
  /** The command timeout in force: the bound for a hold without its own. */
  commandTimeoutMs(): number;
  log(): Logger;
  /** Ends after the replies owed (a `reject`). */
  closeWith(reason: CloseReason, reply: string): void;
  /** Ends ahead of the replies owed (a `drop`). */
  closeNow(reason: CloseReason, reply: string): void;
}

export class SessionSteps {
  readonly #pending = new PendingSteps();
  readonly #host: StepsHost;

  constructor(host: StepsHost) {
    this.#host = host;
  }

  /**
   * Holds later commands until `p` settles; `then` answers in this command's place. A step
   * that fails, or does not settle within the command timeout, is answered `451 4.3.0` in
   * its place (each step also has its own timeout; this bound is for the one that has none).
   */
  hold<T>(p: Promise<T>, then: (value: T) => void): void {
    const { queue, input } = this.#host;
    const slot = queue.reserve();
    input.wait();
    this.#pending.run('hold', this.#host.commandTimeoutMs(), () => p, (r) => {
      queue.fill(slot, null);
      if (r.ok) then(r.value);
      else {
        this.#host.log().warn({ err: describe(r.error) }, 'an asynchronous step failed; answered 451');
        queue.reply(R.stepFailed(this.#host.hostname));
      }
      input.resume();
    });
  }

  /**
   * The decision seam: awaits `d` in this command's place; `pass` runs when it lets the
   * session go on, `refused` when it does not. Its verdict, its timeout's or its failure's,
   * is acted on here.
   */
  decide(d: Decision, facts: SessionFacts, pass: () => void, refused: () => void = () => undefined): void {
    const { queue, input } = this.#host;
    const slot = queue.reserve();
    input.wait();
    this.screen(d, facts, (v) => {
      queue.fill(slot, null);
      if (v.kind !== 'pass') refused();
      this.act(v, pass);
      input.resume();
    });
  }

  /** Runs `d` without holding a command's place (the greeting's screening): `done` gets its verdict. */
  screen(d: Decision, facts: SessionFacts, done: (v: Verdict) => void, greet?: GreetControl): void {
    this.#pending.run(d.name, d.deadlineMs, (signal) => d.decide(facts, signal, greet), (r) => {
      if (!r.ok) this.#host.log().warn({ decision: d.name, err: describe(r.error) }, `decision ${d.name} did not decide; applying its fallback`);
      done(verdictOf(d, r));
    });
  }

  /** Does what a verdict says; `pass` is the session going on. */
  act(v: Verdict, pass: () => void): void {
    switch (v.kind) {
      case 'pass':
        return pass();
      case 'reply':
        return this.#host.queue.reply(v.reply);
      case 'reject':
        return this.#host.closeWith(v.reason, v.reply);
      case 'drop':
        return this.#host.closeNow(v.reason, v.reply);
    }
  }

  /** The session ended: steps still running are cancelled and never settle. */
  abort(): void {
    this.#pending.abort();
  }
}
