// Screening's verdicts, as values: which action is the stronger, what a DNSBL score means,
// and the reply texts (postscreen's, with reply_map hiding a zone's name). Pure.

import type { DnsblConfig, ScreenAction } from '../config/types.js';
import { C521HostNoMail, C550MailboxUnavail } from '../smtp/codes.js';
import { smtpError, type SmtpError } from '../smtp/errors.js';
import { SePol7DeliveryNotAuth1 } from '../smtp/enhanced.js';
import type { DnsblAnswer, ScreenTest } from './types.js';

const RANK: Readonly<Record<ScreenAction, number>> = { ignore: 0, enforce: 1, drop: 2 };

/** The stronger of two actions (drop > enforce > ignore). */
export function stronger(a: ScreenAction, b: ScreenAction): ScreenAction {
  return RANK[b] > RANK[a] ? b : a;
}

/**
 * What a DNSBL score says: at or above `threshold` the test fails; at or below a negative
 * `allowlist_threshold` the remaining tests are skipped (postconf(5): 0, the default, keeps
 * the allowlisting off, or every unlisted client, score 0, would skip them).
 */
export function dnsblVerdict(score: number, cfg: Pick<DnsblConfig, 'threshold' | 'allowlist_threshold'>): 'listed' | 'allowlisted' | 'neutral' {
  if (score >= cfg.threshold) return 'listed';
  if (cfg.allowlist_threshold < 0 && score <= cfg.allowlist_threshold) return 'allowlisted';
  return 'neutral';
}

/** Why a client was refused, as the reply says it: the zones that listed it (reply_map names), else the tests. */
export function reason(tests: readonly ScreenTest[], hits: readonly DnsblAnswer[], replyMap: Readonly<Record<string, string>>): string {
  const listed = hits.filter((h) => h.weight > 0).map((h) => replyMap[h.zone.toLowerCase()] ?? h.zone);
  if (tests.includes('dnsbl') && listed.length > 0) return `blocked using ${[...new Set(listed)].join(', ')}`;
  if (tests.length === 0) return 'blocked';
  return `protocol error (${tests.join(', ')})`;
}

/** `drop`: 521 and close (RFC 7504 §3, RFC 5321 §3.1). */
export function dropReply(host: string, client: string, why: string): string {
  return smtpError(C521HostNoMail, SePol7DeliveryNotAuth1, `${host} Service unavailable; client [${client}] ${why}`).reply;
}

/** `enforce`: the answer to every RCPT. */
export function enforceRefusal(client: string, why: string): SmtpError {
  return smtpError(C550MailboxUnavail, SePol7DeliveryNotAuth1, `Service unavailable; client [${client}] ${why}`);
}
