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
  /** Whether the session can take another command now (backpressure: its replies are read). */
  accepting(): boolean;
  /** Stop (true) or resume (false) reading from the client. */
  pile(full: boolean): void;
  /** The backend socket, corked while a pipelined group is forwarded (one write per group, RFC 2920 §3.1). */
  backend(): net.Socket | undefined;
}

/** Buffered client bytes past which reading stops while processing cannot go on. */
export const MAX_BUFFERED = 256 * 1024;

export class Input {
  readonly #reader = new LineReader();
  #waiting = false;
  /** The next line was sent before the replies owed when it arrived. */
  #pipelinedNext = false;
  #scheduled = false;

  constructor(
    private readonly target: InputTarget,
    private readonly lineLength: () => number,
  ) {}

  get waiting(): boolean {
    return this.#waiting;
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
    const t = this.target;
    const backend = t.backend();
    backend?.cork();
    try {
      while (!this.#waiting && t.accepting()) {
        const mode = t.mode();
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
        const line = this.#reader.readLine(this.lineLength());
        if (!line) break;
        const pipelined = this.#pipelinedNext;
        this.#pipelinedNext = this.#reader.length > 0;
        t.line(line, pipelined);
      }
    } finally {
      backend?.uncork();
    }
    this.flow();
  }

  /** Reading stops while what is buffered cannot be processed and has grown past the bound. */
  flow(): void {
    const stuck = this.#waiting || !this.target.accepting();
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
