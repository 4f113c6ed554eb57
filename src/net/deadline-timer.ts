// A deadline that moves often and is seldom reached: the reply a backend owes, the client's
// next command. The deadline is a number; one Timeout stands behind it, armed for the
// earliest deadline set and left running while the deadline moves later (issue 26: a Timeout
// made and cleared per command or reply cost an object and two timer-list operations each,
// several per session). A timer that fires before the deadline is armed again for what is
// left; one that fires with no deadline set just ends. clear() stops it for good, so nothing
// holds the owner once it is done. Imports nothing: the bottom layer.

export class DeadlineTimer<T = unknown> {
  #timer: NodeJS.Timeout | null = null;
  /** When the armed timer fires (ms epoch). */
  #fireAt = 0;
  /** 0: no deadline. */
  #deadline = 0;

  /**
   * `late(owner)` when the deadline passes. One function shared by all owners of a kind and
   * the owner beside it, rather than a closure per owner: a session holds several of these
   * for its whole life (W5 counts every byte of an idle connection).
   */
  constructor(
    private readonly late: (owner: T) => void,
    private readonly owner: T,
  ) {}

  /** The deadline in force (ms epoch), 0 for none. */
  get at(): number {
    return this.#deadline;
  }

  /** The deadline is now `at` (ms epoch, > 0), earlier or later than before. */
  set(at: number): void {
    this.#deadline = at;
    if (this.#timer && this.#fireAt <= at) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#arm(at);
  }

  /** No deadline for now; the timer, if armed, ends quietly when it fires. */
  stop(): void {
    this.#deadline = 0;
  }

  /** No deadline, and no timer (the owner is done). */
  clear(): void {
    this.#deadline = 0;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(at: number): void {
    this.#fireAt = at;
    // One function for every timer, the owner as its argument: no closure per owner.
    this.#timer = setTimeout(fire, Math.max(0, at - Date.now()), this);
  }

  /** The timer fired (internal: the module's one timer callback): armed again if the deadline moved on, else late. */
  static fired<T>(t: DeadlineTimer<T>): void {
    t.#timer = null;
    if (t.#deadline === 0) return;
    if (t.#deadline > Date.now()) return t.#arm(t.#deadline);
    t.#deadline = 0;
    t.late(t.owner);
  }
}

// `any`: one callback for timers of every owner type; fired() keeps each timer's own type.
const fire = (t: DeadlineTimer<any>): void => DeadlineTimer.fired(t);
