// The client's input as the session consumes it: bytes are buffered, then taken as command
// lines, DATA bytes or BDAT chunks depending on the mode, one command at a time. Processing
// stops while the session waits for an asynchronous step (a bind, DATA's 354) or cannot
// take more (its replies are not being read), and reading stops once too much is buffered,
// so a client that pipelines without end holds a bounded amount of memory.

import type net from 'node:net';
import { LineReader, type Line } from '../smtp/lines.js';

/** What the input feeds, and what it asks of the session. */
export interface InputTarget {
  /** Where bytes go now; `closed` and `starttls` take none. */
  mode(): 'command' | 'data' | 'bdat' | 'closed' | 'starttls';
  /** A command line; `pipelined` when it was sent before the replies owed so far. */
  line(line: Line, pipelined: boolean): void;
  data(chunk: Buffer): void;
  /** At most `bdatLeft()` bytes of a BDAT chunk. */
  bdat(chunk: Buffer): void;
  bdatLeft(): number;
  /** Replies the client is owed now. */
  owed(): number;
  /** Our bytes written to the client that it has not taken yet. */
  unsent(): number;
  /** Stop (true) or resume (false) reading from the client. */
  pile(full: boolean): void;
  /**
   * A line already longer than `max` (the limit in force) and still without its end:
   * `bytes` so far. Called at each read that extends it.
   */
  overlong(bytes: number, max: number): void;
  /** The backend socket, corked while a pipelined group is forwarded (one write per group, RFC 2920 §3.1). */
  backend(): net.Socket | undefined;
  /**
   * The client socket, corked while a pipelined group is answered: its replies leave in one
   * write (RFC 2920 §3.1), not one system call per reply, which let a client pipelining
   * NOOPs into a large socket buffer hold the event loop for seconds.
   */
  client(): net.Socket | undefined;
}

/** Buffered client bytes past which reading stops while processing cannot go on. */
export const MAX_BUFFERED = 256 * 1024;
/** Our replies the client has not read, past which no further command is processed. */
export const MAX_UNSENT = 64 * 1024;
/** Replies owed at once (pipelined commands not yet answered), past which none is processed. */
export const MAX_OWED = 1000;
/** A line without its end past this many times the line limit closes the session. */
export const MAX_OVERLONG_LINES = 64;

export class Input {
  readonly #reader = new LineReader();
  #waiting = false;
  /** The next line was sent before the replies owed when it arrived. */
  #pipelinedNext = false;
  #scheduled = false;
  /** Processing stopped by backpressure; it goes on at `kick`. */
  #blocked = false;
  #backendWatch = false;

  constructor(
    private readonly target: InputTarget,
    private readonly lineLength: () => number,
  ) {}

  get waiting(): boolean {
    return this.#waiting;
  }

  /** Backpressure stopped processing: the session kicks it when the reason may have gone. */
  get blocked(): boolean {
    return this.#blocked;
  }

  /**
   * Backpressure (RFC 2920 §3.1 lets a client pipeline without limit; our memory may not):
   * no further command is taken while the client leaves our replies unread, while too many
   * replies are owed, or while the backend does not take what it was sent. The client's
   * drain and released replies kick processing (the session), the backend's drain here.
   */
  #accepting(): boolean {
    const t = this.target;
    let blocked = t.owed() >= MAX_OWED || t.unsent() > MAX_UNSENT;
    const backend = t.backend();
    if (!blocked && backend && backend.writableLength > MAX_UNSENT) {
      blocked = true;
      if (!this.#backendWatch) {
        this.#backendWatch = true;
        backend.once('drain', () => {
          this.#backendWatch = false;
          this.kick();
        });
      }
    }
    this.#blocked = blocked;
    return !blocked;
  }

  get buffered(): number {
    return this.#reader.length;
  }

  /** Bytes read in command mode; `owed`: replies the client had not received yet. */
  push(chunk: Buffer, owed: boolean): void {
    if (owed || this.#waiting) this.#pipelinedNext = true;
    this.#reader.push(chunk);
    this.process();
  }

  /** What followed the end of a body in the same read: commands the client pipelined. */
  pushRest(rest: Buffer): void {
    this.#reader.push(rest);
    this.#pipelinedNext = true;
    this.process();
  }

  process(): void {
    // Replies written while the client is corked count as unsent until the uncork hands them
    // to the kernel: a group stopped only by them goes on once the kernel has taken them.
    do this.#group();
    while (this.#blocked && !this.#waiting && this.#accepting());
    this.flow();
  }

  /**
   * Takes what can be processed now. A pipelined group (more than one command read at once)
   * and body bytes are handled with the sockets corked, so its replies and relayed commands
   * go out in one write each way; a lone command's reply and relayed line are written at
   * once, without the stream's buffered-write path (issue 26).
   */
  #group(): void {
    const t = this.target;
    let backend: net.Socket | undefined;
    let client: net.Socket | undefined;
    let corked = false;
    try {
      while (!this.#waiting && this.#accepting()) {
        const mode = t.mode();
        if (!corked && mode !== 'command') {
          corked = true;
          (backend = t.backend())?.cork();
          (client = t.client())?.cork();
        }
        if (mode === 'data') {
          const rest = this.#reader.takeAll();
          if (rest.length) t.data(rest);
          break;
        }
        if (mode === 'bdat') {
          const bytes = this.#reader.readBytes(t.bdatLeft());
          if (!bytes) break;
          t.bdat(bytes);
          continue;
        }
        if (mode !== 'command') break;
        const max = this.lineLength();
        const line = this.#reader.readLine(max);
        if (!line) {
          const over = this.#reader.overlong;
          if (over > 0) t.overlong(over, max);
          break;
        }
        const pipelined = this.#pipelinedNext;
        this.#pipelinedNext = this.#reader.length > 0;
        // More follows in this read: the group's writes are gathered from its first command on.
        if (!corked && this.#pipelinedNext) {
          corked = true;
          (backend = t.backend())?.cork();
          (client = t.client())?.cork();
        }
        t.line(line, pipelined);
      }
    } finally {
      backend?.uncork();
      client?.uncork();
    }
  }

  /** Reading stops while what is buffered cannot be processed and has grown past the bound. */
  flow(): void {
    const stuck = this.#waiting || !this.#accepting();
    this.target.pile(stuck && this.#reader.length > MAX_BUFFERED);
  }

  /** Holds processing until `resume` (a bind, DATA's reply, the cluster's admission). */
  wait(): void {
    this.#waiting = true;
  }

  resume(): void {
    if (!this.#waiting) return;
    this.#waiting = false;
    this.kick();
  }

  /** Processing may go on: after the current handler has returned and its reply is queued. */
  kick(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.process();
    });
  }

  /** STARTTLS: discards what was read after the command (RFC 3207 §4.2); returns how much. */
  clear(): number {
    this.#pipelinedNext = false;
    return this.#reader.clear();
  }
}
