// The greeting (RFC 5321 §3.1, §4.3.1): the 220 at once, or after postscreen's greet wait
// (a `220-` line, the final 220 later) and the greet-time decisions (screening) that run
// meanwhile; the 220 waits for both. A verdict other than pass replaces the 220: a refusing
// greeting after which only QUIT is taken, or the end of the session.

import type { Config } from '../config/types.js';
import type { CloseReason } from '../observe/records.js';
import type { SmtpError } from '../smtp/errors.js';
import type { Decision, GreetControl, SessionFacts, Verdict } from './decision.js';
import type { Input } from './input.js';
import type { Lifecycle } from './lifecycle.js';
import * as R from './replies.js';
import type { ReplyQueue } from './reply-queue.js';
import type { SessionSteps } from './steps.js';

/** What the greeting needs of its session. */
export interface GreetingHost {
  readonly cfg: Config;
  readonly life: Lifecycle;
  readonly queue: ReplyQueue;
  readonly input: Pick<Input, 'wait' | 'resume'>;
  readonly steps: SessionSteps;
  /** Written at once, outside the reply queue (the `220-` line). */
  writeNow(line: string): void;
  facts(): SessionFacts;
  /** The session is ending or has ended: nothing more to greet. */
  ending(): boolean;
  /** The client talked before the greeting (anomaly `pregreet`). */
  pregreeted(): boolean;
  closeWith(reason: CloseReason, reply: string): void;
  /** From now on every command but QUIT is refused with this. */
  refuseAll(refusal: () => SmtpError): void;
}

export class Greeting {
  readonly #host: GreetingHost;
  #sent = true;
  #timer: NodeJS.Timeout | null = null;
  /** Greet-time decisions still running (the greet wait counts as one). */
  #waits = 0;
  /** A greet-time decision's verdict other than pass, acted on once the wait is over. */
  #verdict: Verdict | null = null;
  /** The decision runs the greet wait and judges early talkers (screening), not smtp.pregreet. */
  #ownsWait = false;
  #teaserSent = false;
  #teaserTimer: NodeJS.Timeout | null = null;

  constructor(host: GreetingHost) {
    this.#host = host;
  }

  /** The final greeting is out (or its refusing stand-in): input before it is pregreet. */
  get sent(): boolean {
    return this.#sent;
  }

  /** Greets now, or starts the greet wait and `decision` (a screening step) first. */
  start(decision: Decision | null): void {
    const { cfg, life, queue, input } = this.#host;
    this.#ownsWait = decision?.ownsGreetWait === true;
    const wait = this.#ownsWait ? 0 : cfg.smtp.pregreet.wait;
    if (wait <= 0 && !decision) {
      life.to('greeted');
      queue.reply(R.greeting(cfg.hostname, cfg.banner));
      return;
    }
    // A client that talks in between did not wait for the greeting (RFC 5321 §3.1, §4.3.1).
    this.#sent = false;
    life.to('screening');
    input.wait();
    if (wait > 0) {
      this.#host.writeNow(R.greetingFirstLine(cfg.hostname, cfg.banner));
      this.#waits++;
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#waitOver();
      }, wait);
    }
    if (decision) this.#screen(decision);
  }

  /** The session ended: the greet wait's timer goes. */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#teaserTimer) clearTimeout(this.#teaserTimer);
    this.#teaserTimer = null;
  }

  #screen(d: Decision): void {
    this.#waits++;
    const greet: GreetControl | undefined = this.#ownsWait ? { teaser: (ms, signal) => this.#teaser(ms, signal), pregreeted: () => this.#host.pregreeted() } : undefined;
    this.#host.steps.screen(
      d,
      this.#host.facts(),
      (v) => {
        if (v.kind !== 'pass') this.#verdict = v;
        // Dropping needs no wait: the client gets its answer now.
        if (v.kind === 'drop') return this.#host.steps.act(v, () => undefined);
        this.#waitOver();
      },
      greet,
    );
  }

  /** The decision's greet wait: `220-` now, resolved after `ms` (or when `signal` aborts, or the session ends). */
  #teaser(ms: number, signal: AbortSignal): Promise<void> {
    if (this.#host.ending()) return Promise.resolve();
    if (!this.#teaserSent) {
      this.#teaserSent = true;
      this.#host.writeNow(R.greetingFirstLine(this.#host.cfg.hostname, this.#host.cfg.banner));
    }
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        if (this.#teaserTimer) clearTimeout(this.#teaserTimer);
        this.#teaserTimer = null;
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#teaserTimer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #waitOver(): void {
    if (--this.#waits > 0) return;
    this.#greet();
  }

  #greet(): void {
    const host = this.#host;
    if (host.ending()) return;
    const { cfg, life, queue, input } = host;
    const v = this.#verdict;
    this.#sent = true;
    if (v && v.kind !== 'pass') {
      // A greeting other than 220 (RFC 5321 §3.1: 554 and the session goes on refusing), or the end.
      life.to('greeted');
      host.steps.act(v, () => undefined);
      if (v.kind === 'reply') {
        host.refuseAll(R.noService);
        input.resume();
      }
      return;
    }
    if (!this.#ownsWait && host.pregreeted() && cfg.smtp.pregreet.action === 'reject') {
      host.closeWith('error', R.pregreetRefused(cfg.hostname));
      return;
    }
    life.to('greeted');
    queue.reply(R.greeting(cfg.hostname, cfg.banner));
    input.resume();
  }
}
