// The session's LIMITS (RFC 9422) and SIZE (RFC 1870) counters: what is in force (ours,
// lowered to what the bound backend, or every live one, announces), what has been used,
// and the refusal for a command that goes over. Counts refusals by limit for the record.

import type { LimitsConfig } from '../config/types.js';
import type { LimitName } from '../observe/records.js';
import { domainToASCII } from 'node:url';
import { C452StorageFull, C501BadParamSyntax, C552MailboxFull } from '../smtp/codes.js';
import { addressDomain } from '../smtp/command.js';
import { lowerLimits, type Limits } from '../smtp/ehlo.js';
import { smtpError } from '../smtp/errors.js';
import { SeProto5BadParams4, SeProto5TooManyRcpts3, SeSys3MsgLimitExceeded4 } from '../smtp/enhanced.js';

/** What the backend side announces: the bound server's EHLO, or what every live server offers. */
export interface BackendLimits {
  size: number | null;
  limits: Limits;
}

export const tooBig = () => smtpError(C552MailboxFull, SeSys3MsgLimitExceeded4, 'Message size exceeds fixed limit');

export class SessionLimits {
  /** MAIL commands this session, failed ones included (RFC 9422 §4.1 MAILMAX). */
  #mailCommands = 0;
  /** RCPT commands in the current transaction (RCPTMAX counts commands, §4.2). */
  #rcptCommands = 0;
  /** Distinct recipient domains in the current transaction (RCPTDOMAINMAX, §4.3). */
  readonly #domains = new Set<string>();
  /** Refusals by limit, for the session record. */
  readonly rejections: Partial<Record<LimitName, number>> = {};

  constructor(
    private readonly cfg: () => LimitsConfig,
    private readonly backend: () => BackendLimits,
    private readonly onHit: (limit: LimitName) => void,
  ) {}

  /** LIMITS in force: ours, lowered to what the backend side announces. */
  inForce(): Limits {
    const c = this.cfg();
    return lowerLimits({ mailmax: c.mailmax, rcptmax: c.rcptmax, rcptdomainmax: c.rcptdomainmax }, this.backend().limits);
  }

  /** SIZE in force: ours, lowered to what the backend side announces. */
  size(): number {
    const own = this.cfg().message_size;
    const theirs = this.backend().size;
    return theirs !== null && theirs < own ? theirs : own;
  }

  /** A new transaction (MAIL, RSET, EHLO, XCLIENT, STARTTLS): per-transaction counts start over. */
  newTransaction(): void {
    this.#rcptCommands = 0;
    this.#domains.clear();
  }

  /** Counts a MAIL command; true when it goes over MAILMAX (the session then closes). */
  mailOverMax(): boolean {
    this.#mailCommands++;
    const { mailmax } = this.inForce();
    if (mailmax === null || this.#mailCommands <= mailmax) return false;
    this.hit('mailmax');
    return true;
  }

  /** MAIL's SIZE= parameter (RFC 1870 §6.1): a declared size over the limit is refused before any data moves. */
  checkDeclaredSize(size: string | null | undefined): void {
    if (size === undefined || size === null) return;
    if (!/^\d{1,20}$/.test(size)) throw smtpError(C501BadParamSyntax, SeProto5BadParams4, 'Bad SIZE parameter');
    if (Number(size) > this.size()) throw tooBig();
  }

  /** Counts a RCPT command; throws the 452 when it goes over RCPTMAX or RCPTDOMAINMAX. */
  checkRcpt(address: string): void {
    const limits = this.inForce();
    if (limits.rcptmax !== null && ++this.#rcptCommands > limits.rcptmax) {
      // RFC 5321 §4.5.3.1.10: 452 is the reply for too many recipients.
      this.hit('rcptmax');
      throw smtpError(C452StorageFull, SeProto5TooManyRcpts3, 'Too many recipients');
    }
    if (limits.rcptdomainmax === null) return;
    const raw = addressDomain(address);
    // Compare A-labels, so a U-label and its punycode form are one domain (IDNA only when
    // there is a non-ASCII character: the common case costs a lower-casing).
    const domain = /^[\x00-\x7f]*$/.test(raw) ? raw.toLowerCase() : (domainToASCII(raw) || raw).toLowerCase();
    if (this.#domains.has(domain)) return;
    if (this.#domains.size >= limits.rcptdomainmax) {
      this.hit('rcptdomainmax');
      throw smtpError(C452StorageFull, SeProto5TooManyRcpts3, 'Too many recipient domains');
    }
    this.#domains.add(domain);
  }

  hit(limit: LimitName): void {
    this.rejections[limit] = (this.rejections[limit] ?? 0) + 1;
    this.onHit(limit);
  }
}
