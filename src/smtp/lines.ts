// Incremental CRLF line reader for the command phase (RFC 5321 §2.3.8: lines end in CRLF).
// It also hands out raw bytes for BDAT chunks and the bytes left over when a session
// switches to DATA, so one buffer serves both modes.

const LF = 0x0a;
const CR = 0x0d;

export interface Line {
  /** The line without its terminator. Empty when `tooLong`. */
  text: Buffer;
  /** Ended by LF alone (or contains a CR not followed by LF). */
  bareLf: boolean;
  /** Longer than the limit: its bytes were discarded. */
  tooLong: boolean;
}

const EMPTY = Buffer.alloc(0);

export class LineReader {
  #buf: Buffer = EMPTY;
  #discarding = false;
  /** Bytes of the current over-long line dropped so far. */
  #dropped = 0;

  get length(): number {
    return this.#buf.length;
  }

  /**
   * Bytes of a line already past the limit and still without its end (0 when none): the
   * caller can name it at once, and give up on a peer that never ends it.
   */
  get overlong(): number {
    return this.#discarding ? this.#dropped + this.#buf.length : 0;
  }

  push(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
  }

  /**
   * The next complete line, or null. A line longer than `max` bytes (terminator excluded)
   * is reported once as `tooLong` when its end arrives; its bytes are dropped as they come,
   * so a client cannot grow the buffer without bound.
   */
  readLine(max: number): Line | null {
    const buf = this.#buf;
    const lf = buf.indexOf(LF);
    if (lf === -1) {
      if (buf.length > max + 1) {
        // Keep a trailing CR: it may pair with the LF of the next chunk.
        this.#discarding = true;
        this.#buf = buf[buf.length - 1] === CR ? buf.subarray(buf.length - 1) : EMPTY;
        this.#dropped += buf.length - this.#buf.length;
      }
      return null;
    }
    this.#buf = lf + 1 === buf.length ? EMPTY : buf.subarray(lf + 1);
    const crlf = lf > 0 && buf[lf - 1] === CR;
    const end = crlf ? lf - 1 : lf;
    if (this.#discarding || end > max) {
      this.#discarding = false;
      this.#dropped = 0;
      return { text: EMPTY, bareLf: !crlf, tooLong: true };
    }
    const text = buf.subarray(0, end);
    // A CR inside the line is as dangerous as a bare LF (RFC 5321 §2.3.8).
    const bare = !crlf || text.indexOf(CR) !== -1;
    return { text, bareLf: bare, tooLong: false };
  }

  /** Up to `n` buffered bytes (for BDAT), or null when nothing is buffered. */
  readBytes(n: number): Buffer | null {
    const buf = this.#buf;
    if (buf.length === 0 || n <= 0) return null;
    if (n >= buf.length) {
      this.#buf = EMPTY;
      return buf;
    }
    this.#buf = buf.subarray(n);
    return buf.subarray(0, n);
  }

  /** Everything buffered; the reader is left empty. */
  takeAll(): Buffer {
    const buf = this.#buf;
    this.#buf = EMPTY;
    this.#discarding = false;
    this.#dropped = 0;
    return buf;
  }

  /** Drop everything buffered (bytes pipelined after STARTTLS, RFC 3207 §4.2). */
  clear(): number {
    const n = this.#buf.length;
    this.#buf = EMPTY;
    this.#discarding = false;
    this.#dropped = 0;
    return n;
  }
}
