// DATA body scanner: finds the end-of-data mark `CRLF . CRLF` (RFC 5321 §4.1.1.4) across
// arbitrary chunk boundaries and flags bare CR / bare LF, which SMTP smuggling relies on
// (backends disagree on whether `<LF>.<LF>` ends DATA). Work per chunk is a few native
// indexOf calls per line; the body is never copied or split beyond the terminator.

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;

const enum State {
  LineStart, // just after CRLF (or at the very start of the body)
  Dot, //        `.` at line start
  DotCr, //      `.` CR at line start
  Mid, //        inside a line
  Cr, //         CR inside a line, LF expected
}

export interface ScanResult {
  /** Index just past the terminator in this chunk, or -1 if the body goes on. */
  end: number;
  /** A bare CR or bare LF was seen in the body before `end`. */
  bare: boolean;
}

export class DataScanner {
  #state: State = State.LineStart;
  #bare = false;
  /** Body bytes seen, terminator excluded (dot-stuffed form, as on the wire). */
  bytes = 0;

  /**
   * Of `bytes`, how many at the end may still turn out to be the terminator (`.` or `.` CR
   * at a line start, the chunk having ended there): a size check must not count them.
   */
  get pending(): number {
    return this.#state === State.Dot ? 1 : this.#state === State.DotCr ? 2 : 0;
  }

  /** Anything bare seen so far in this body. */
  get bare(): boolean {
    return this.#bare;
  }

  reset(): void {
    this.#state = State.LineStart;
    this.#bare = false;
    this.bytes = 0;
  }

  scan(chunk: Uint8Array): ScanResult {
    const len = chunk.length;
    let state = this.#state;
    let i = 0;
    let nextCr = -1; // next CR / LF at or after i (len: none left), found lazily
    let nextLf = -1;
    while (i < len) {
      switch (state) {
        case State.LineStart: {
          const c = chunk[i];
          if (c === DOT) {
            state = State.Dot;
            i++;
          } else state = State.Mid;
          break;
        }
        case State.Dot: {
          const c = chunk[i];
          if (c === CR) {
            state = State.DotCr;
            i++;
          } else state = State.Mid; // a dot-stuffed line: `..text`
          break;
        }
        case State.DotCr: {
          if (chunk[i] === LF) {
            const end = i + 1;
            this.#state = State.LineStart;
            // `.CRLF` after the last line break is the mark, not body (it may span chunks)
            this.bytes += end - 3;
            return { end, bare: this.#bare };
          }
          this.#bare = true; // `.` CR x: a CR not followed by LF
          state = State.Mid;
          break;
        }
        case State.Mid: {
          // Jump to the next CR; any LF before it is bare. The positions are cached, so a
          // run of bare LFs (or CRs) costs one search, not one per byte.
          if (nextCr < i) nextCr = indexOf(chunk, CR, i);
          if (nextLf < i) nextLf = indexOf(chunk, LF, i);
          if (nextLf < nextCr) {
            this.#bare = true;
            // A bare LF is not a line break (RFC 5321 §2.3.8): only CRLF . CRLF ends the
            // body, so `<LF>.<CR><LF>` is body here as it is for a strict backend.
            i = nextLf + 1;
            break;
          }
          if (nextCr === len) {
            i = len;
            break;
          }
          i = nextCr + 1;
          state = State.Cr;
          break;
        }
        case State.Cr: {
          if (chunk[i] === LF) {
            i++;
            state = State.LineStart;
          } else {
            this.#bare = true;
            state = State.Mid;
          }
          break;
        }
      }
    }
    this.#state = state;
    this.bytes += len;
    return { end: -1, bare: this.#bare };
  }
}

/** Index of `byte` at or after `from`, or the chunk length if there is none. */
function indexOf(chunk: Uint8Array, byte: number, from: number): number {
  const at = chunk.indexOf(byte, from);
  return at === -1 ? chunk.length : at;
}
