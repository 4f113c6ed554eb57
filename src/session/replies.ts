// Postern's own replies, each text in one place. Refusals are SmtpErrors (thrown where the
// problem is found, answered in command order by the session); the rest are reply lines.

import {
  C214Help, C220ServiceReady, C221Closing, C250Completed, C421ServiceUnavail, C451LocalErr, C500BadSyntax,
  C501BadParamSyntax, C502CmdNotImpl, C503BadCmdSeq, C521HostNoMail, C550MailboxUnavail, C554TransactionFailed,
} from '../smtp/codes.js';
import { SmtpError } from '../smtp/errors.js';

const line = (code: number, text: string) => `${code} ${text}\r\n`;

export const OK = line(C250Completed, '2.0.0 Ok');
/** MAIL while it is held back for the next command (session/binding.ts #holdMail). */
export const MAIL_OK = line(C250Completed, '2.1.0 Ok');
export const BYE = line(C221Closing, '2.0.0 Bye');
export const HELP = line(C214Help, '2.0.0 Postern SMTP proxy; see RFC 5321');
export const READY_FOR_TLS = line(C220ServiceReady, '2.0.0 Ready to start TLS');

/** `banner`: the text after the host name (config `banner`, default `ESMTP Postern`). */
export const greeting = (host: string, banner: string) => line(C220ServiceReady, `${host} ${banner}`);
/** postscreen-style greet wait: the first line of a multi-line greeting (RFC 5321 §4.2.1). */
export const greetingFirstLine = (host: string, banner: string) => `${C220ServiceReady}-${host} ${banner}\r\n`;
export const heloReply = (host: string) => line(C250Completed, host);

// Closing replies: the session ends after each.
export const shuttingDown = (host: string) => line(C421ServiceUnavail, `4.3.2 ${host} Service shutting down`);
export const timedOut = (host: string) => line(C421ServiceUnavail, `4.4.2 ${host} Error: timeout exceeded`);
export const tooManyErrors = (host: string) => line(C421ServiceUnavail, `4.7.0 ${host} Too many errors`);
export const tooManyTransactions = () => line(C421ServiceUnavail, '4.7.0 Too many transactions in this session');
export const serviceUnavailable = (host: string) => line(C421ServiceUnavail, `4.3.2 ${host} Service not available, try again later`);
export const refusedClient = (host: string, why: string) => line(C421ServiceUnavail, `4.7.0 ${host} ${why}`);
export const backendLost = (host: string) => line(C421ServiceUnavail, `4.4.2 ${host} Backend connection lost, try again later`);
export const pregreetRefused = (host: string) => line(C554TransactionFailed, `5.5.0 ${host} Protocol error: talked before the greeting`);
export const nonSmtpClosing = (host: string) => line(C521HostNoMail, `5.5.1 ${host} Non-SMTP command, closing`);

export const noBackend = (host: string) => line(C451LocalErr, `4.4.1 ${host} No backend available, try again later`);
/** An asynchronous step (a verifier, a cluster decision) failed or never answered. */
export const stepFailed = (host: string) => line(C451LocalErr, `4.3.0 ${host} Temporary failure, try again later`);

// Refusals.
export const needMail = () => new SmtpError(C503BadCmdSeq, '5.5.1', 'Need MAIL command');
export const needHelo = () => new SmtpError(C503BadCmdSeq, '5.5.1', 'Send HELO/EHLO first');
export const inTransaction = () => new SmtpError(C503BadCmdSeq, '5.5.1', 'MAIL transaction in progress');
export const syntax = (usage: string) => new SmtpError(C501BadParamSyntax, '5.5.4', `Syntax: ${usage}`);
export const badUtf8 = () => new SmtpError(C500BadSyntax, '5.5.2', 'Error: bad UTF-8 syntax');
export const notRecognized = () => new SmtpError(C500BadSyntax, '5.5.2', 'Command not recognized');
export const lineTooLong = () => new SmtpError(C500BadSyntax, '5.5.2', 'Line too long');
export const notAvailable = (what: string) => new SmtpError(C502CmdNotImpl, '5.5.1', `${what} not available`);
export const disabled = (verb: string) => new SmtpError(C502CmdNotImpl, '5.5.1', `${verb} command is disabled`);
export const tlsActive = () => new SmtpError(C503BadCmdSeq, '5.5.1', 'TLS already active');
/** After a greeting that refuses service (RFC 5321 §3.1): only QUIT is taken. */
export const noService = () => new SmtpError(C503BadCmdSeq, '5.5.1', 'Error: no SMTP service here, send QUIT');
export const proxyFailed = () => new SmtpError(C503BadCmdSeq, '5.7.0', 'Command refused, required Proxy negotiation failed');
export const proxyUntrusted = () => new SmtpError(C503BadCmdSeq, '5.5.1', 'PROXY header not accepted from your address');
export const proxyNotHere = () => new SmtpError(C550MailboxUnavail, '5.7.0', 'PROXY header not allowed here');
export const xclientNotAllowed = () => new SmtpError(C550MailboxUnavail, '5.7.0', 'XCLIENT not allowed');
