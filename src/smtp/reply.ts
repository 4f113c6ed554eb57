// SMTP replies (RFC 5321 §4.2): parsing the backend's, formatting Postern's own.

const LF = 0x0a;
const EMPTY = Buffer.alloc(0);

export interface Reply {
  code: number;
  /** Text of each line, without code and separator. */
  lines: string[];
  /** The reply exactly as received (all lines, CRLFs included), to relay byte for byte. */
  raw: Buffer;
}

export class ReplyParseError extends Error {
  readonly code = 'REPLY_SYNTAX';
  constructor(
    message: string,
    readonly line: string,
  ) {
    super(message);
    this.name = 'ReplyParseError';
  }
}

/** RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; allow generous slack for real servers (CRLF excluded). */
const MAX_REPLY_LINE = 4096;
/** A multi-line reply (EHLO) longer than this is not a real server talking. */
const MAX_REPLY_LINES = 256;

/**
 * A parsed reply whose line texts are decoded only when asked for: a relayed reply needs its
 * code and bytes alone, and most replies are relayed (issue 26: two strings per line were a
 * per-session allocation). The bytes were checked line by line when it was parsed.
 */
class ParsedReply implements Reply {
  #lines: string[] | null = null;
  constructor(
    readonly code: number,
    readonly raw: Buffer,
  ) {}

  get lines(): string[] {
    return (this.#lines ??= splitLines(this.raw));
  }
}

/** The text of each line of a complete reply (code and separator cut off). */
function splitLines(raw: Buffer): string[] {
  const lines: string[] = [];
  let start = 0;
  while (start < raw.length) {
    const lf = raw.indexOf(LF, start);
    const end = lf > start && raw[lf - 1] === 0x0d ? lf - 1 : lf;
    lines.push(end - start > 4 ? raw.toString('utf8', start + 4, end) : '');
    start = lf + 1;
  }
  return lines;
}

/**
 * Incremental parser for a stream of replies. Lines are `NNN-text` (more follow) or
 * `NNN text` / `NNN` (last), §4.2.1. Every line of one reply must carry the same code.
 */
export class ReplyParser {
  #buf: Buffer = EMPTY;
  #start = 0; // where the reply being assembled starts in #buf
  #scan = 0; // where to look for the next LF
  #code = 0;
  /** Lines of the reply being assembled. */
  #count = 0;

  /** Feeds bytes; returns every reply completed by them. Throws ReplyParseError on garbage. */
  push(chunk: Buffer): Reply[] {
    if (this.#buf.length === this.#start) {
      this.#buf = chunk;
      this.#start = 0;
      this.#scan = 0;
    } else {
      this.#buf = Buffer.concat([this.#buf.subarray(this.#start), chunk]);
      this.#scan -= this.#start;
      this.#start = 0;
    }
    const out: Reply[] = [];
    const buf = this.#buf;
    let lineStart = this.#scan;
    for (;;) {
      const lf = buf.indexOf(LF, lineStart);
      if (lf === -1) {
        // + 1: the pending bytes may end in the CR of the line's CRLF.
        if (buf.length - lineStart > MAX_REPLY_LINE + 1) {
          throw new ReplyParseError('reply line too long', buf.toString('latin1', lineStart, lineStart + 80));
        }
        break;
      }
      const end = lf > lineStart && buf[lf - 1] === 0x0d ? lf - 1 : lf;
      // The same limit for a line that arrived whole, so it does not depend on chunking.
      if (end - lineStart > MAX_REPLY_LINE) {
        throw new ReplyParseError('reply line too long', buf.toString('latin1', lineStart, lineStart + 80));
      }
      // Checked on the bytes: the code's three digits are ASCII, so byte 3 is character 3.
      const code = codeAt(buf, lineStart, end);
      const sep = end - lineStart > 3 ? buf[lineStart + 3]! : 0x20;
      if (sep !== 0x20 && sep !== 0x2d) throw new ReplyParseError('bad reply separator', buf.toString('utf8', lineStart, end));
      if (this.#count > 0 && code !== this.#code) throw new ReplyParseError('reply code changed within a reply', buf.toString('utf8', lineStart, end));
      this.#code = code;
      this.#count++;
      if (sep === 0x20) {
        out.push(new ParsedReply(code, buf.subarray(this.#start, lf + 1)));
        this.#count = 0;
        this.#start = lf + 1;
      } else if (this.#count > MAX_REPLY_LINES) {
        throw new ReplyParseError('reply has too many lines', buf.toString('utf8', lineStart, end));
      }
      lineStart = lf + 1;
    }
    this.#scan = lineStart;
    if (this.#start === buf.length) {
      this.#buf = EMPTY;
      this.#start = 0;
      this.#scan = 0;
    }
    return out;
  }

  /** Bytes received that are not yet a complete reply. */
  get pending(): number {
    return this.#buf.length - this.#start;
  }
}

/** The reply code of the line `buf[start, end)`; throws as parseCode does. */
function codeAt(buf: Buffer, start: number, end: number): number {
  if (end - start < 3) return parseCode(buf.toString('utf8', start, end));
  const a = buf[start]! - 48;
  const b = buf[start + 1]! - 48;
  const c = buf[start + 2]! - 48;
  if (a < 2 || a > 5 || b < 0 || b > 5 || c < 0 || c > 9) return parseCode(buf.toString('utf8', start, end));
  return a * 100 + b * 10 + c;
}

function parseCode(line: string): number {
  if (line.length < 3) throw new ReplyParseError('reply line too short', line);
  const a = line.charCodeAt(0) - 48;
  const b = line.charCodeAt(1) - 48;
  const c = line.charCodeAt(2) - 48;
  // §4.2: first digit 2-5, second 0-5, third 0-9
  if (a < 2 || a > 5 || b < 0 || b > 5 || c < 0 || c > 9) throw new ReplyParseError('bad reply code', line);
  return a * 100 + b * 10 + c;
}

/** Formats a reply; `lines` may hold several lines (multi-line reply, §4.2.1). */
export function formatReply(code: number, lines: string | readonly string[]): string {
  const list = typeof lines === 'string' ? [lines] : lines;
  if (list.length === 0) return `${code}\r\n`;
  let out = '';
  for (let i = 0; i < list.length; i++) {
    out += `${code}${i === list.length - 1 ? ' ' : '-'}${list[i]}\r\n`;
  }
  return out;
}

/** One line for logs: `250 2.0.0 Ok: queued as X`. */
export function replyText(reply: Reply): string {
  return `${reply.code} ${reply.lines[reply.lines.length - 1] ?? ''}`.trimEnd();
}
