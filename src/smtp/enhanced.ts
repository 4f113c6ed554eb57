// Enhanced status codes (RFC 3463; the IANA "SMTP Enhanced Status Codes" registry) named the
// way mox names them: `Se` + the subject's word and number + the detail's word and number,
// each value `subject.detail` without the class. The class is the reply code's first digit
// (RFC 3463 §2: a class that differs from the reply's is wrong), so one name serves "4.7.0"
// and "5.7.0": `enhanced(C421ServiceUnavail, SePol7Other0)` is "4.7.0". Only the codes
// Postern sends are listed; add a name from the registry when a new reply needs one.

// X.0.X: other or undefined status (RFC 3463 §3.1).
export const SeOther00 = '0.0';

// X.1.X: addressing status (§3.2).
export const SeAddr1Other0 = '1.0';
export const SeAddr1MailboxSyntax3 = '1.3';
export const SeAddr1SenderSyntax7 = '1.7';

// X.3.X: mail system status (§3.4).
export const SeSys3Other0 = '3.0';
export const SeSys3NotAccepting2 = '3.2';
export const SeSys3MsgLimitExceeded4 = '3.4';

// X.4.X: network and routing status (§3.5).
export const SeNet4NoAnswer1 = '4.1';
export const SeNet4BadConn2 = '4.2';

// X.5.X: mail delivery protocol status (§3.6).
export const SeProto5Other0 = '5.0';
export const SeProto5BadCmdOrSeq1 = '5.1';
export const SeProto5Syntax2 = '5.2';
export const SeProto5TooManyRcpts3 = '5.3';
export const SeProto5BadParams4 = '5.4';
/** RFC 4954 §6: an AUTH exchange line over the limit. */
export const SeProto5AuthExchangeTooLong6 = '5.6';

// X.6.X: message content or media status (§3.7).
/** RFC 6531: a non-ASCII address without SMTPUTF8. */
export const SeMsg6NonASCIIAddrNotPermitted7 = '6.7';

// X.7.X: security or policy status (§3.8).
export const SePol7Other0 = '7.0';
/** Delivery not authorized, message refused (RFC 3463 §3.8): screening's refusals. */
export const SePol7DeliveryNotAuth1 = '7.1';
/** RFC 4954 §6. */
export const SePol7AuthBadCreds8 = '7.8';
/** RFC 4954 §6. */
export const SePol7AuthWeakMech9 = '7.9';
/** RFC 4954 §6. */
export const SePol7EncReqForAuth11 = '7.11';

/** The full enhanced code for a reply: the reply code's class, then `se` (one of the names above). */
export function enhanced(code: number, se: string): string {
  return `${Math.floor(code / 100)}.${se}`;
}
