import { enhanced } from './enhanced.js';
import { formatReply } from './reply.js';

/** Longest text put in a refusal: with code and enhanced code the line stays within 512 octets (RFC 5321 §4.5.3.1.5). */
const MAX_TEXT = 480;

/**
 * Reply text as RFC 5321 §4.2 allows it (textstring: HT and printable ASCII). Texts often quote
 * what the client sent (a verb, a parameter), which may hold a bare CR, control bytes or
 * non-ASCII: those become `?`, so a refusal is always one well-formed line.
 */
function textstring(text: string): string {
  const clean = text.replace(/[^\t\x20-\x7e]/g, '?');
  return clean.length > MAX_TEXT ? `${clean.slice(0, MAX_TEXT - 3)}...` : clean;
}

/**
 * An error that carries the SMTP reply to send for it (one type for every protocol
 * refusal, after mox's smtpError): thrown where the problem is found, answered where
 * the reply queue is.
 */
export class SmtpError extends Error {
  constructor(
    readonly smtpCode: number,
    /** Enhanced status code (RFC 3463), e.g. `5.5.2`. */
    readonly enhanced: string,
    readonly text: string,
  ) {
    super(`${smtpCode} ${enhanced} ${text}`);
    this.name = 'SmtpError';
  }

  get reply(): string {
    return formatReply(this.smtpCode, `${this.enhanced} ${textstring(this.text)}`);
  }
}

/** A refusal with its enhanced code named (smtp/enhanced.ts): the class comes from `smtpCode`. */
export function smtpError(smtpCode: number, se: string, text: string): SmtpError {
  return new SmtpError(smtpCode, enhanced(smtpCode, se), text);
}
