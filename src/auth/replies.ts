// The replies of SMTP AUTH (RFC 4954 §4 and §6, enhanced codes from RFC 5248), as named
// constants: the session answers with these, never with literals of its own.
import { C235AuthSuccess, C454TempAuthFail, C500BadSyntax, C501BadParamSyntax, C502CmdNotImpl, C503BadCmdSeq, C504ParamNotImpl, C530SecurityRequired, C534AuthMechWeak, C535AuthBadCreds, C538EncReqForAuth } from '../smtp/codes.js';
import { formatReply } from '../smtp/reply.js';
import { SmtpError } from '../smtp/errors.js';

/** RFC 4954 §4: the exchange succeeded. */
export const REPLY_AUTH_OK = formatReply(C235AuthSuccess, '2.7.0 Authentication successful');

export const AUTH_ERRORS = {
  /** §4: `AUTH` without a mechanism, or with more than one argument after it. */
  syntax: new SmtpError(C501BadParamSyntax, '5.5.4', 'Syntax: AUTH mechanism [initial-response]'),
  /** §4: a response (or initial response) that is not valid base64. */
  badBase64: new SmtpError(C501BadParamSyntax, '5.5.2', 'Invalid base64 data'),
  /** The decoded PLAIN or LOGIN message breaks its mechanism's syntax (RFC 4616 §2). */
  badMessage: new SmtpError(C501BadParamSyntax, '5.5.2', 'Malformed authentication data'),
  /** §4: the client sent `*`. */
  cancelled: new SmtpError(C501BadParamSyntax, '5.7.0', 'Authentication cancelled'),
  /** §4: a mechanism Postern does not offer. */
  unknownMechanism: new SmtpError(C504ParamNotImpl, '5.5.4', 'Unrecognized authentication type'),
  /** §6: a plaintext mechanism on a connection without TLS. */
  encryptionRequired: new SmtpError(C538EncReqForAuth, '5.7.11', 'Encryption required for requested authentication mechanism'),
  /** §6: the verifier's policy refuses this mechanism (e.g. Dovecot offers no PLAIN). */
  mechanismTooWeak: new SmtpError(C534AuthMechWeak, '5.7.9', 'Authentication mechanism is too weak'),
  /** §4: a line longer than the authentication buffer. */
  lineTooLong: new SmtpError(C500BadSyntax, '5.5.6', 'Authentication Exchange line is too long'),
  /** §6: wrong user or password. */
  invalid: new SmtpError(C535AuthBadCreds, '5.7.8', 'Authentication credentials invalid'),
  /** §6: the verifier could not be asked (down, timed out) or asked to come back later. */
  temporary: new SmtpError(C454TempAuthFail, '4.7.0', 'Temporary authentication failure'),
  /** Too many failures from this address or for this user: refused without asking the verifier. */
  flood: new SmtpError(C454TempAuthFail, '4.7.0', 'Too many failed authentication attempts, try again later'),
  /** §6: MAIL before AUTH on a listener with `auth: required`. */
  required: new SmtpError(C530SecurityRequired, '5.7.0', 'Authentication required'),
  /** §4: a second AUTH after a successful one. */
  alreadyAuthenticated: new SmtpError(C503BadCmdSeq, '5.5.1', 'Already authenticated'),
  /** §4: AUTH is not permitted during a mail transaction. */
  inTransaction: new SmtpError(C503BadCmdSeq, '5.5.1', 'AUTH not permitted during a mail transaction'),
  /** AUTH is an ESMTP command: it needs EHLO first. */
  helloFirst: new SmtpError(C503BadCmdSeq, '5.5.1', 'Send EHLO first'),
  /** AUTH on a listener with `auth: off`. */
  notAvailable: new SmtpError(C502CmdNotImpl, '5.5.1', 'AUTH not available'),
} as const;
