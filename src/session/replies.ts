// Postern's own replies, each text in one place. Refusals are SmtpErrors (thrown where the
// problem is found, answered in command order by the session); the rest are reply lines.

import {
  C214Help, C220ServiceReady, C221Closing, C250Completed, C452StorageFull, C421ServiceUnavail, C451LocalErr, C500BadSyntax,
  C501BadParamSyntax, C502CmdNotImpl, C503BadCmdSeq, C521HostNoMail, C550MailboxUnavail, C554TransactionFailed,
} from '../smtp/codes.js';
import { smtpError } from '../smtp/errors.js';
import {
  enhanced, SeAddr1Other0, SeNet4BadConn2, SeNet4NoAnswer1, SeOther00, SePol7Other0, SeProto5BadCmdOrSeq1,
  SeProto5BadParams4, SeProto5Other0, SeProto5Syntax2, SeProto5TooManyRcpts3, SeSys3NotAccepting2, SeSys3Other0,
} from '../smtp/enhanced.js';

const line = (code: number, text: string) => `${code} ${text}\r\n`;
/** A reply line with its enhanced code (RFC 3463), named in smtp/enhanced.ts. */
const reply = (code: number, se: string, text: string) => line(code, `${enhanced(code, se)} ${text}`);

// The replies every session sends are encoded once (issue 26: a string written is encoded
// again at every write).
export const OK = Buffer.from(reply(C250Completed, SeOther00, 'Ok'));
/** MAIL while it is held back for the next command (session/binding.ts #holdMail). */
export const MAIL_OK = Buffer.from(reply(C250Completed, SeAddr1Other0, 'Ok'));
export const BYE = Buffer.from(reply(C221Closing, SeOther00, 'Bye'));
export const HELP = reply(C214Help, SeOther00, 'Postern SMTP proxy; see RFC 5321');
export const READY_FOR_TLS = Buffer.from(reply(C220ServiceReady, SeOther00, 'Ready to start TLS'));

let lastGreeting: { host: string; banner: string; bytes: Buffer } | null = null;
/** `banner`: the text after the host name (config `banner`, default `ESMTP Postern`). Encoded once per host and banner. */
export const greeting = (host: string, banner: string): Buffer => {
  if (lastGreeting?.host !== host || lastGreeting.banner !== banner) {
    lastGreeting = { host, banner, bytes: Buffer.from(line(C220ServiceReady, `${host} ${banner}`)) };
  }
  return lastGreeting.bytes;
};
/** postscreen-style greet wait: the first line of a multi-line greeting (RFC 5321 §4.2.1). */
export const greetingFirstLine = (host: string, banner: string) => `${C220ServiceReady}-${host} ${banner}\r\n`;
export const heloReply = (host: string) => line(C250Completed, host);

// Closing replies: the session ends after each.
export const shuttingDown = (host: string) => reply(C421ServiceUnavail, SeSys3NotAccepting2, `${host} Service shutting down`);
export const timedOut = (host: string) => reply(C421ServiceUnavail, SeNet4BadConn2, `${host} Error: timeout exceeded`);
export const tooManyErrors = (host: string) => reply(C421ServiceUnavail, SePol7Other0, `${host} Too many errors`);
export const tooManyTransactions = () => reply(C421ServiceUnavail, SePol7Other0, 'Too many transactions in this session');
export const serviceUnavailable = (host: string) => reply(C421ServiceUnavail, SeSys3NotAccepting2, `${host} Service not available, try again later`);
export const refusedClient = (host: string, why: string) => reply(C421ServiceUnavail, SePol7Other0, `${host} ${why}`);
export const backendLost = (host: string) => reply(C421ServiceUnavail, SeNet4BadConn2, `${host} Backend connection lost, try again later`);
export const pregreetRefused = (host: string) => reply(C554TransactionFailed, SeProto5Other0, `${host} Protocol error: talked before the greeting`);
export const nonSmtpClosing = (host: string) => reply(C521HostNoMail, SeProto5BadCmdOrSeq1, `${host} Non-SMTP command, closing`);

/**
 * RCPT for another pool than the transaction's (routing): RFC 5321 §4.5.3.1.10 gives 452
 * for recipients over a server's limit, and clients send them in a following transaction.
 */
export const otherPool = () => smtpError(C452StorageFull, SeProto5TooManyRcpts3, 'Too many recipients (routed to another pool: send them in a new transaction)');
/** No route matches and there is no pool `default`. */
export const noRoute = (host: string) => smtpError(C451LocalErr, SeSys3Other0, `${host} No route for this message, try again later`);

export const noBackend = (host: string) => reply(C451LocalErr, SeNet4NoAnswer1, `${host} No backend available, try again later`);
/** An asynchronous step (a verifier, a cluster decision) failed or never answered. */
export const stepFailed = (host: string) => reply(C451LocalErr, SeSys3Other0, `${host} Temporary failure, try again later`);

// Refusals.
/** DATA with no recipient accepted (RFC 5321 §3.3; Postfix's wording): every RCPT refused, or none routed yet. */
export const noValidRecipients = () => smtpError(C554TransactionFailed, SeProto5BadCmdOrSeq1, 'Error: no valid recipients');
export const needMail = () => smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'Need MAIL command');
export const needHelo = () => smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'Send HELO/EHLO first');
export const inTransaction = () => smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'MAIL transaction in progress');
export const syntax = (usage: string) => smtpError(C501BadParamSyntax, SeProto5BadParams4, `Syntax: ${usage}`);
export const badUtf8 = () => smtpError(C500BadSyntax, SeProto5Syntax2, 'Error: bad UTF-8 syntax');
export const notRecognized = () => smtpError(C500BadSyntax, SeProto5Syntax2, 'Command not recognized');
export const lineTooLong = () => smtpError(C500BadSyntax, SeProto5Syntax2, 'Line too long');
export const notAvailable = (what: string) => smtpError(C502CmdNotImpl, SeProto5BadCmdOrSeq1, `${what} not available`);
export const disabled = (verb: string) => smtpError(C502CmdNotImpl, SeProto5BadCmdOrSeq1, `${verb} command is disabled`);
export const tlsActive = () => smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'TLS already active');
/** After a greeting that refuses service (RFC 5321 §3.1): only QUIT is taken. */
export const noService = () => smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'Error: no SMTP service here, send QUIT');
export const proxyFailed = () => smtpError(C503BadCmdSeq, SePol7Other0, 'Command refused, required Proxy negotiation failed');
export const proxyUntrusted = () => smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'PROXY header not accepted from your address');
export const proxyNotHere = () => smtpError(C550MailboxUnavail, SePol7Other0, 'PROXY header not allowed here');
export const xclientNotAllowed = () => smtpError(C550MailboxUnavail, SePol7Other0, 'XCLIENT not allowed');
