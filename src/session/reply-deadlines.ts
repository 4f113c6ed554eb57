// How long the bound backend may take over the replies it owes: as long as RFC 5321 §4.5.3.2
// gives a client, limits.timeouts.final_reply (10 minutes) for the end of a message
// (§4.5.3.2.6) and the command timeout (5 minutes, as for MAIL and RCPT, §4.5.3.2.2-3) for
// anything else. One timer, for the oldest reply owed, started again at each reply.

export interface ReplyTimeouts {
  command: number;
  final_reply: number;
}

export class ReplyDeadlines {
  /** Replies owed, oldest first: true for the reply to the end of a message. */
  #owed: boolean[] = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly timeouts: () => ReplyTimeouts,
    /** The oldest reply owed is late: why, for the log. */
    private readonly expired: (why: string) => void,
  ) {}

  /** One more reply is owed (`final`: the reply to the end of a message). */
  owe(final: boolean): void {
    this.#owed.push(final);
    if (!this.#timer) this.#arm();
  }

  /** The oldest reply owed came; the next one's deadline starts now, unless `next` is false (the binding changed). */
  paid(next = true): void {
    this.#owed.shift();
    this.#stop();
    if (next && this.#owed.length > 0) this.#arm();
  }

  /** Nothing is owed any more (the binding ended). */
  clear(): void {
    this.#owed = [];
    this.#stop();
  }

  #stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(): void {
    const final = this.#owed[0] === true;
    const t = this.timeouts();
    const ms = final ? t.final_reply : t.command;
    this.#timer = setTimeout(() => this.expired(`no reply to ${final ? 'the end of a message' : 'a relayed command'} within ${ms} ms`), ms);
  }
}
