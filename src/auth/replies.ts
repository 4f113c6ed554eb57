// The replies of SMTP AUTH (RFC 4954 §4 and §6, enhanced codes from RFC 5248), as named
// constants: the session answers with these, never with literals of its own.
import { C235AuthSuccess, C454TempAuthFail, C500BadSyntax, C501BadParamSyntax, C502CmdNotImpl, C503BadCmdSeq, C504ParamNotImpl, C530SecurityRequired, C534AuthMechWeak, C535AuthBadCreds, C538EncReqForAuth } from '../smtp/codes.js';
import { formatReply } from '../smtp/reply.js';
import { smtpError } from '../smtp/errors.js';
import {
  enhanced, SePol7AuthBadCreds8, SePol7AuthWeakMech9, SePol7EncReqForAuth11, SePol7Other0,
  SeProto5AuthExchangeTooLong6, SeProto5BadCmdOrSeq1, SeProto5BadParams4, SeProto5Syntax2,
} from '../smtp/enhanced.js';

/** RFC 4954 §4: the exchange succeeded. */
export const REPLY_AUTH_OK = formatReply(C235AuthSuccess, `${enhanced(C235AuthSuccess, SePol7Other0)} Authentication successful`);

export const AUTH_ERRORS = {
  /** §4: `AUTH` without a mechanism, or with more than one argument after it. */
  syntax: smtpError(C501BadParamSyntax, SeProto5BadParams4, 'Syntax: AUTH mechanism [initial-response]'),
  /** §4: a response (or initial response) that is not valid base64. */
  badBase64: smtpError(C501BadParamSyntax, SeProto5Syntax2, 'Invalid base64 data'),
  /** The decoded PLAIN or LOGIN message breaks its mechanism's syntax (RFC 4616 §2). */
  badMessage: smtpError(C501BadParamSyntax, SeProto5Syntax2, 'Malformed authentication data'),
  /** §4: the client sent `*`. */
  cancelled: smtpError(C501BadParamSyntax, SePol7Other0, 'Authentication cancelled'),
  /** §4: a mechanism Postern does not offer. */
  unknownMechanism: smtpError(C504ParamNotImpl, SeProto5BadParams4, 'Unrecognized authentication type'),
  /** §6: a plaintext mechanism on a connection without TLS. */
  encryptionRequired: smtpError(C538EncReqForAuth, SePol7EncReqForAuth11, 'Encryption required for requested authentication mechanism'),
  /** §6: the verifier's policy refuses this mechanism (e.g. Dovecot offers no PLAIN). */
  mechanismTooWeak: smtpError(C534AuthMechWeak, SePol7AuthWeakMech9, 'Authentication mechanism is too weak'),
  /** §4: a line longer than the authentication buffer. */
  lineTooLong: smtpError(C500BadSyntax, SeProto5AuthExchangeTooLong6, 'Authentication Exchange line is too long'),
  /** §6: wrong user or password. */
  invalid: smtpError(C535AuthBadCreds, SePol7AuthBadCreds8, 'Authentication credentials invalid'),
  /** §6: the verifier could not be asked (down, timed out) or asked to come back later. */
  temporary: smtpError(C454TempAuthFail, SePol7Other0, 'Temporary authentication failure'),
  /** Too many failures from this address or for this user: refused without asking the verifier. */
  flood: smtpError(C454TempAuthFail, SePol7Other0, 'Too many failed authentication attempts, try again later'),
  /** §6: MAIL before AUTH on a listener with `auth: required`. */
  required: smtpError(C530SecurityRequired, SePol7Other0, 'Authentication required'),
  /** §4: a second AUTH after a successful one. */
  alreadyAuthenticated: smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'Already authenticated'),
  /** §4: AUTH is not permitted during a mail transaction. */
  inTransaction: smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'AUTH not permitted during a mail transaction'),
  /** AUTH is an ESMTP command: it needs EHLO first. */
  helloFirst: smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'Send EHLO first'),
  /** AUTH on a listener with `auth: off`. */
  notAvailable: smtpError(C502CmdNotImpl, SeProto5BadCmdOrSeq1, 'AUTH not available'),
} as const;
