// xtext, RFC 3461 §4: printable ASCII `!`..`~` except `+` and `=` stands for itself;
// every other octet is `+` and two upper-case hex digits. XCLIENT values use it, so a
// client-chosen HELO name or login can never inject spaces, `=` or line breaks.

const HEX = '0123456789ABCDEF';

export function xtextEncode(value: string | Uint8Array): string {
  // Most values (addresses, ports, HELO names) need no escape: a string of those characters
  // alone is its own UTF-8 and its own xtext, and is returned without a copy (issue 26).
  if (typeof value === 'string' && isPlainXtext(value)) return value;
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (standsForItself(b)) out += String.fromCharCode(b);
    else out += '+' + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

/** RFC 3461 §4: `!`..`~` except `+` and `=` is written as itself. */
function standsForItself(c: number): boolean {
  return c >= 0x21 && c <= 0x7e && c !== 0x2b && c !== 0x3d;
}

/** Every character stands for itself in xtext. */
function isPlainXtext(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!standsForItself(s.charCodeAt(i))) return false;
  return true;
}

export class XtextError extends Error {
  readonly code = 'XTEXT_SYNTAX';
}

/** Decodes xtext to bytes; throws XtextError on a malformed `+XX` or a character xtext forbids. */
export function xtextDecode(text: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new XtextError(`bad xtext escape at ${i}`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (c >= 0x21 && c <= 0x7e && c !== 0x3d) {
      out.push(c);
    } else {
      throw new XtextError(`character not allowed in xtext at ${i}`);
    }
  }
  return Buffer.from(out);
}
