// `smtp.bare_lf: normalize`: rewrite a DATA body so every line ends in CRLF. A bare LF or
// bare CR becomes CRLF. Two rules keep this from ever creating `CRLF.CRLF` or unstuffing a
// dot the client sent (RFC 5321 §4.5.2):
//  - a line this creates starts where no line started before, so a `.` there is doubled;
//  - a line that is exactly `.` and is ended by a bare CR/LF becomes `..`, not a terminator.
// It runs byte by byte over the whole body from its first byte (its state must match the
// stream), so it costs more than the default `reject`, which needs no rewriting at all.

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

const enum Col {
  Start, // nothing on this line yet
  DotOnly, // the line so far is exactly `.`
  Text, // anything else
}

export class BareLineNormalizer {
  #col: Col = Col.Start;
  /** The current line started after a real CRLF (or at the start of the body). */
  #realStart = true;
  /** A CR ended the previous chunk; whether it is bare depends on the next byte. */
  #heldCr = false;

  transform(chunk: Uint8Array): Buffer {
    // Worst case every byte is a bare line end preceded by a dot: 4 bytes out per byte in.
    const out = Buffer.allocUnsafe(chunk.length * 4 + 4);
    let o = 0;
    let col = this.#col;
    let realStart = this.#realStart;
    let heldCr = this.#heldCr;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (heldCr) {
        heldCr = false;
        if (b === LF) {
          out[o++] = CR;
          out[o++] = LF;
          col = Col.Start;
          realStart = true;
          continue;
        }
        // That CR was bare: end the line here, then look at b afresh.
        if (col === Col.DotOnly && realStart) out[o++] = DOT;
        out[o++] = CR;
        out[o++] = LF;
        col = Col.Start;
        realStart = false;
      }
      if (b === CR) {
        heldCr = true;
        continue;
      }
      if (b === LF) {
        if (col === Col.DotOnly && realStart) out[o++] = DOT;
        out[o++] = CR;
        out[o++] = LF;
        col = Col.Start;
        realStart = false;
        continue;
      }
      if (col === Col.Start) {
        if (b === DOT) {
          if (realStart) col = Col.DotOnly;
          else {
            out[o++] = DOT; // transparency for a line start we made
            col = Col.Text;
          }
        } else col = Col.Text;
      } else if (col === Col.DotOnly) col = Col.Text;
      out[o++] = b;
    }
    this.#col = col;
    this.#realStart = realStart;
    this.#heldCr = heldCr;
    return out.subarray(0, o);
  }
}
