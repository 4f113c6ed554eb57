// How long the bound backend may take over the replies it owes: as long as RFC 5321 §4.5.3.2
// gives a client, limits.timeouts.final_reply (10 minutes) for the end of a message
// (§4.5.3.2.6) and the command timeout (5 minutes, as for MAIL and RCPT, §4.5.3.2.2-3) for
// anything else. One deadline, for the oldest reply owed, started again at each reply, on
// one timer for the whole binding (net/deadline-timer.ts).
import { DeadlineTimer } from '../net/deadline-timer.js';

export interface ReplyTimeouts {
  command: number;
  final_reply: number;
}

export class ReplyDeadlines {
  /** Replies owed, oldest first: true for the reply to the end of a message. */
  #owed: boolean[] = [];
  /** The oldest reply's timeout, for the message. */
  #ms = 0;
  /** Made at the first reply owed: a session that never binds a backend has none. */
  #timer: DeadlineTimer<ReplyDeadlines> | null = null;

  constructor(
    private readonly timeouts: () => ReplyTimeouts,
    /** The oldest reply owed is late: why, for the log. */
    private readonly expired: (why: string) => void,
  ) {}

  /** One more reply is owed (`final`: the reply to the end of a message). */
  owe(final: boolean): void {
    this.#owed.push(final);
    if (this.#timer === null || this.#timer.at === 0) this.#start();
  }

  /** The oldest reply owed came; the next one's deadline starts now, unless `next` is false (the binding changed). */
  paid(next = true): void {
    this.#owed.shift();
    this.#timer?.stop();
    if (next && this.#owed.length > 0) this.#start();
  }

  /** Nothing is owed any more (the binding ended): the timer goes too. */
  clear(): void {
    this.#owed = [];
    this.#timer?.clear();
  }

  #start(): void {
    const t = this.timeouts();
    this.#ms = this.#owed[0] === true ? t.final_reply : t.command;
    (this.#timer ??= new DeadlineTimer<ReplyDeadlines>(late, this)).set(Date.now() + this.#ms);
  }

  /** The oldest reply owed is late (DeadlineTimer). */
  lateReply(): void {
    this.expired(`no reply to ${this.#owed[0] === true ? 'the end of a message' : 'a relayed command'} within ${this.#ms} ms`);
  }
}

const late = (d: ReplyDeadlines): void => d.lateReply();
