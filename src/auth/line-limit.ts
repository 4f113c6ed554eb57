// How long a client line may be before it is refused `500 Line too long`. RFC 4954 §4
// lets an AUTH command's initial response be as long as the mechanism makes it (12288
// octets suffice for deployed ones), above the usual limits.line_length; every other
// command stays within line_length. The line splitter cannot see the verb before the line
// ends, so where AUTH may be used it reads up to the larger bound (memory stays bounded by
// it) and a finished line that is over line_length and is not AUTH is refused after.
import type { Line } from '../smtp/lines.js';
import { AUTH_LINE_MAX } from './exchange.js';

/** The bound the splitter reads lines up to. */
export function splitterLineMax(lineLength: number, authPossible: boolean): number {
  return authPossible ? Math.max(AUTH_LINE_MAX, lineLength) : lineLength;
}

const AUTH_VERB = Buffer.from('AUTH');
const SP = 0x20;

/** `AUTH` then a space (or nothing): the verb compared without case (RFC 5321 §2.4). */
export function isAuthCommand(text: Buffer): boolean {
  if (text.length < 4 || (text.length > 4 && text[4] !== SP)) return false;
  for (let i = 0; i < 4; i++) if ((text[i]! & 0xdf) !== AUTH_VERB[i]) return false;
  return true;
}

const EMPTY = Buffer.alloc(0);

/**
 * The command line as the session should take it: a line over `lineLength` that is not an
 * AUTH command becomes `tooLong`, as if the splitter had dropped it. SASL response lines
 * (inside an exchange) are left alone: the exchange checks them against AUTH_LINE_MAX.
 */
export function withinLineLength(line: Line, lineLength: number, exchanging: boolean): Line {
  if (exchanging || line.tooLong || line.text.length <= lineLength || isAuthCommand(line.text)) return line;
  return { text: EMPTY, bareLf: line.bareLf, tooLong: true };
}
