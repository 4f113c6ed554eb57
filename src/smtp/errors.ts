import { formatReply } from './reply.js';

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
    return formatReply(this.smtpCode, `${this.enhanced} ${this.text}`);
  }
}
