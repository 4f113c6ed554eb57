// Reply codes (RFC 5321 §4.2.2-4.2.3, RFC 4954 §6, RFC 7504) named for what they mean, as
// mox names them. The texts that go with them live where they are sent (session/replies.ts).

export const C214Help = 214;
export const C220ServiceReady = 220;
export const C221Closing = 221;
export const C235AuthSuccess = 235;
export const C250Completed = 250;
export const C334ContinueAuth = 334;
export const C354StartMailInput = 354;
export const C421ServiceUnavail = 421;
export const C451LocalErr = 451;
export const C452StorageFull = 452;
export const C454TempAuthFail = 454;
export const C500BadSyntax = 500;
export const C501BadParamSyntax = 501;
export const C502CmdNotImpl = 502;
export const C503BadCmdSeq = 503;
export const C504ParamNotImpl = 504;
export const C521HostNoMail = 521;
export const C530SecurityRequired = 530;
export const C534AuthMechWeak = 534;
export const C535AuthBadCreds = 535;
export const C538EncReqForAuth = 538;
export const C550MailboxUnavail = 550;
export const C552MailboxFull = 552;
export const C553BadMailbox = 553;
export const C554TransactionFailed = 554;

// Reply classes by the first digit (RFC 5321 §4.2.1).
/** 2yz: the command was carried out. */
export const isCompletion = (code: number): boolean => code >= 200 && code < 300;
/** 4yz or 5yz (replies are 2yz-5yz): the command was refused, for now or for good. */
export const isRefusal = (code: number): boolean => code >= 400;
/** 5yz: refused for good; the same command will not do. */
export const isPermanentRefusal = (code: number): boolean => code >= 500;
