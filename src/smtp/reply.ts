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
 * Incremental parser for a stream of replies. Lines are `NNN-text` (more follow) or
 * `NNN text` / `NNN` (last), §4.2.1. Every line of one reply must carry the same code.
 */
export class ReplyParser {
  #buf: Buffer = EMPTY;
  #start = 0; // where the reply being assembled starts in #buf
  #scan = 0; // where to look for the next LF
  #code = 0;
  #lines: string[] = [];

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
      const line = buf.toString('utf8', lineStart, end);
      const code = parseCode(line);
      const sep = line.length > 3 ? line.charCodeAt(3) : 0x20;
      if (sep !== 0x20 && sep !== 0x2d) throw new ReplyParseError('bad reply separator', line);
      if (this.#lines.length > 0 && code !== this.#code) throw new ReplyParseError('reply code changed within a reply', line);
      this.#code = code;
      this.#lines.push(line.length > 4 ? line.slice(4) : '');
      lineStart = lf + 1;
      if (sep === 0x20) {
        out.push({ code, lines: this.#lines, raw: buf.subarray(this.#start, lineStart) });
        this.#lines = [];
        this.#start = lineStart;
      } else if (this.#lines.length > MAX_REPLY_LINES) {
        throw new ReplyParseError('reply has too many lines', line);
      }
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
