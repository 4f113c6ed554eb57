// DNSBL/DNSWL scoring from the zones' answers, as postscreen scores them, plus the checks
// that keep a broken or refusing zone from listing anybody. Pure: answers in, verdict out.
//
// - Each site whose filter matches one of its zone's A answers adds its weight once, however
//   many answers match (postscreen_dnsbl.c); several sites on one zone each count.
// - Answers in 127.255.255.0/24 are Spamhaus's error codes (query through a public resolver,
//   over quota, ...), never a listing: the whole zone counts as failing for that lookup.
// - Answers outside 127.0.0.0/8 are not DNSBL answers (RFC 5782 §2.1): an expired zone
//   whose domain now has a wildcard record answers every query that way. Also an error.
// - RFC 5782 §5: a zone must list 127.0.0.2 and must NOT list 127.0.0.1; one that lists
//   127.0.0.1 answers for everything and is skipped (`judgeZoneCheck`).

import { ipv4Octets } from '../net/ip.js';
import { filterMatches, type DnsblSite } from '../config/dnsbl-site.js';

/** What one zone said for one query name. */
export type ZoneOutcome =
  | { zone: string; answers: readonly string[] } // A records; [] = NXDOMAIN or no A record: clean
  | { zone: string; error: string }; //               timeout, SERVFAIL, refused, ...

export type AnswerVerdict =
  | { kind: 'clean' }
  | { kind: 'listed'; answers: readonly (readonly [number, number, number, number])[]; texts: readonly string[] }
  | { kind: 'error'; error: string };

/** Whether a set of A answers is a listing, nothing, or an error code (see the header). */
export function classifyAnswers(answers: readonly string[]): AnswerVerdict {
  if (answers.length === 0) return { kind: 'clean' };
  const octets: [number, number, number, number][] = [];
  for (const a of answers) {
    const o = ipv4Octets(a);
    if (!o) return { kind: 'error', error: `unparsable answer ${a}` };
    if (o[0] === 127 && o[1] === 255 && o[2] === 255) return { kind: 'error', error: `refused: answer ${a} (127.255.255.0/24 is an error code)` };
    if (o[0] !== 127) return { kind: 'error', error: `answer ${a} outside 127.0.0.0/8 (RFC 5782 §2.1)` };
    octets.push(o);
  }
  return { kind: 'listed', answers: octets, texts: answers };
}

export interface DnsblHit {
  zone: string;
  weight: number;
  /** The first A answer that matched the site's filter. */
  answer: string;
}

export interface ScoreResult {
  score: number;
  hits: DnsblHit[];
  errors: { zone: string; error: string }[];
}

/**
 * The score of one client from its zones' outcomes. Sites whose zone has no outcome (not
 * asked: skipped, or the lookup was cut short) count nothing and are not errors here.
 */
export function scoreOutcomes(sites: readonly DnsblSite[], outcomes: Iterable<ZoneOutcome>): ScoreResult {
  const verdicts = new Map<string, AnswerVerdict>();
  const errors: ScoreResult['errors'] = [];
  for (const o of outcomes) {
    if (verdicts.has(o.zone)) continue;
    const v: AnswerVerdict = 'error' in o ? { kind: 'error', error: o.error } : classifyAnswers(o.answers);
    verdicts.set(o.zone, v);
    if (v.kind === 'error') errors.push({ zone: o.zone, error: v.error });
  }
  let score = 0;
  const hits: DnsblHit[] = [];
  for (const site of sites) {
    const v = verdicts.get(site.zone);
    if (!v || v.kind !== 'listed') continue;
    const i = v.answers.findIndex((a) => filterMatches(site, a));
    if (i === -1) continue;
    score += site.weight;
    hits.push({ zone: site.zone, weight: site.weight, answer: v.texts[i]! });
  }
  return { score, hits, errors };
}

export type ZoneCheck = { state: 'ok' | 'broken' | 'unknown'; why?: string };

/**
 * RFC 5782 §5 test entries: `never` is what the zone said for 127.0.0.1 (must not be
 * listed), `always` for 127.0.0.2 (must be). A zone listing 127.0.0.1 is broken. A zone that
 * does not list 127.0.0.2 is odd but may still work: ok, with the reason to warn about.
 * When the 127.0.0.1 query failed nothing is known.
 */
export function judgeZoneCheck(never: ZoneOutcome, always: ZoneOutcome): ZoneCheck {
  const v1 = 'error' in never ? ({ kind: 'error', error: never.error } as const) : classifyAnswers(never.answers);
  if (v1.kind === 'error') return { state: 'unknown', why: `check of 127.0.0.1 failed: ${v1.error}` };
  if (v1.kind === 'listed') return { state: 'broken', why: `lists 127.0.0.1 (${v1.texts.join(' ')}), which RFC 5782 §5 says must never be listed: it answers for everything` };
  const v2 = 'error' in always ? ({ kind: 'error', error: always.error } as const) : classifyAnswers(always.answers);
  if (v2.kind === 'clean') return { state: 'ok', why: 'does not list the test entry 127.0.0.2 (RFC 5782 §5)' };
  if (v2.kind === 'error') return { state: 'ok', why: `check of 127.0.0.2 failed: ${v2.error}` };
  return { state: 'ok' };
}
