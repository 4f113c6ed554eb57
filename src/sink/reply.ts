import type { SMTPServerError } from 'smtp-server';

const REPLY = /^([2-5]\d\d)(?:[ -](.*))?$/s;
/** An enhanced status code (RFC 3463) at the start of a reply text. */
export const ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3}(?: |$)/;

/** Turns a reply line like '550 5.1.1 No such user' into the error smtp-server sends back as is. */
export function replyError(reply: string): SMTPServerError {
  const m = REPLY.exec(reply.trim());
  const err: SMTPServerError = new Error(m ? (m[2] ?? '') : reply.trim());
  err.responseCode = m ? Number(m[1]) : 550;
  return err;
}

/** RFC 9422 keyword line, e.g. 'LIMITS MAILMAX=20 RCPTMAX=100', or null when nothing is set. */
export function limitsKeyword(limits: { mailmax?: number; rcptmax?: number; rcptdomainmax?: number } | undefined): string | null {
  if (!limits) return null;
  const parts: string[] = [];
  if (limits.mailmax !== undefined) parts.push(`MAILMAX=${limits.mailmax}`);
  if (limits.rcptmax !== undefined) parts.push(`RCPTMAX=${limits.rcptmax}`);
  if (limits.rcptdomainmax !== undefined) parts.push(`RCPTDOMAINMAX=${limits.rcptdomainmax}`);
  return parts.length ? `LIMITS ${parts.join(' ')}` : null;
}
