// Command lines, RFC 5321 §4.1: `VERB [SP args]`, verbs case-insensitive (§2.4).

import { C501BadParamSyntax, C553BadMailbox } from './codes.js';
import { smtpError } from './errors.js';
import { SeAddr1MailboxSyntax3, SeAddr1SenderSyntax7, SeMsg6NonASCIIAddrNotPermitted7, SeProto5BadParams4 } from './enhanced.js';

export interface Command {
  /** Upper-cased verb. */
  verb: string;
  /** Everything after the verb and one space, as sent. */
  args: string;
}

export function parseCommand(line: string): Command {
  const sp = line.indexOf(' ');
  if (sp === -1) return { verb: asciiUpper(line), args: '' };
  return { verb: asciiUpper(line.slice(0, sp)), args: line.slice(sp + 1) };
}

/**
 * Upper-cases a-z only. String#toUpperCase maps e.g. U+017F `ſ` to `S` and U+0131 `ı` to
 * `I`, so `ſtarttls` would pass for STARTTLS here while the backend sees an unknown verb.
 */
function asciiUpper(s: string): string {
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

/** Commands after which a client must wait for the reply, RFC 2920 §3.1 (plus RFC 3207, 4954). */
export const ENDS_GROUP: ReadonlySet<string> = new Set([
  'EHLO',
  'HELO',
  'DATA',
  'VRFY',
  'EXPN',
  'TURN',
  'QUIT',
  'NOOP',
  'STARTTLS',
  'AUTH',
  'XCLIENT',
]);

export interface PathCommand {
  /** The address inside `<>`, '' for the null path. */
  address: string;
  /** ESMTP parameters, keys upper-cased; value null for a bare keyword (§4.1.2 esmtp-param). */
  params: Map<string, string | null>;
}

/**
 * `MAIL FROM:<path> [params]` / `RCPT TO:<path> [params]` (§4.1.1.2, §4.1.1.3).
 * `keyword` is `FROM` or `TO`. Addresses may be UTF-8 (RFC 6531); a space is tolerated
 * after the colon as many clients send one.
 */
export function parsePathCommand(args: string, keyword: 'FROM' | 'TO'): PathCommand {
  const prefix = keyword + ':';
  if (args.length < prefix.length || asciiUpper(args.slice(0, prefix.length)) !== prefix) {
    throw smtpError(C501BadParamSyntax, SeProto5BadParams4, `Syntax: ${keyword === 'FROM' ? 'MAIL FROM:<address>' : 'RCPT TO:<address>'}`);
  }
  let rest = args.slice(prefix.length).trimStart();
  if (rest[0] !== '<') throw smtpError(C501BadParamSyntax, SeAddr1SenderSyntax7, 'Bad address syntax: angle brackets required');
  const close = findPathEnd(rest);
  if (close === -1) throw smtpError(C501BadParamSyntax, SeAddr1SenderSyntax7, 'Bad address syntax: missing >');
  let address = rest.slice(1, close);
  // Source routes are to be ignored, RFC 5321 §4.1.1.3 / Appendix C.
  const colon = address.startsWith('@') ? address.indexOf(':') : -1;
  if (colon !== -1) address = address.slice(colon + 1);
  if (keyword === 'TO' && address === '') throw smtpError(C501BadParamSyntax, SeAddr1MailboxSyntax3, 'Bad recipient address syntax');
  if (/[\x00-\x1f\x7f]/.test(address)) throw smtpError(C501BadParamSyntax, SeAddr1SenderSyntax7, 'Bad address syntax: control character');
  rest = rest.slice(close + 1);
  const params = new Map<string, string | null>();
  if (rest.length > 0) {
    if (rest[0] !== ' ') throw smtpError(C501BadParamSyntax, SeProto5BadParams4, 'Syntax error in parameters');
    for (const p of rest.trim().split(/ +/)) {
      if (p === '') continue;
      const eq = p.indexOf('=');
      const key = asciiUpper(eq === -1 ? p : p.slice(0, eq));
      if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key)) throw smtpError(C501BadParamSyntax, SeProto5BadParams4, `Bad parameter: ${printable(p)}`);
      // A parameter given twice (two SIZE=) has no meaning the backend would agree on.
      if (params.has(key)) throw smtpError(C501BadParamSyntax, SeProto5BadParams4, `Duplicate parameter: ${key}`);
      params.set(key, eq === -1 ? null : p.slice(eq + 1));
    }
  }
  return { address, params };
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * RFC 6531 §3.4: non-ASCII addresses only in a transaction whose MAIL declared SMTPUTF8
 * (`553 5.6.7`, as Postfix answers); ESMTP parameters stay ASCII unless it did (§3.3 lets
 * values be UTF-8 then), else `501 5.5.4`. The line is valid UTF-8 already (isUtf8).
 */
export function checkCharset(path: PathCommand, smtputf8: boolean): void {
  if (smtputf8) return;
  if (NON_ASCII.test(path.address)) throw smtpError(C553BadMailbox, SeMsg6NonASCIIAddrNotPermitted7, 'Must declare SMTPUTF8 to send non-ASCII addresses');
  for (const [key, value] of path.params) {
    if (value !== null && NON_ASCII.test(value)) throw smtpError(C501BadParamSyntax, SeProto5BadParams4, `Bad ${key} parameter: non-ASCII without SMTPUTF8`);
  }
}

/** Text a client chose, safe to echo in a reply: printable ASCII, short. */
export function printable(s: string, max = 64): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, max);
}

/** Index of the `>` closing the path, honouring quoted local parts (`<"a>b"@x>`). */
function findPathEnd(s: string): number {
  let quoted = false;
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '>') return i;
  }
  return -1;
}

/** The domain of an address (after the last `@`), lower-cased; '' if none. */
export function addressDomain(address: string): string {
  const at = address.lastIndexOf('@');
  return at === -1 ? '' : address.slice(at + 1).toLowerCase();
}
