// DNSBL/DNSWL site specifications in postscreen's `postscreen_dnsbl_sites` syntax, so a
// main.cf value can be copied as it is. Pure: text in, values out.
//
//   site   = zone [ "=" filter ] [ "*" weight ]
//   zone   = a DNS domain name (letters, digits, "-", "_"; labels of 1..63)
//   filter = field "." field "." field "." field      (optionally wrapped in one "[...]")
//   field  = octet | "[" member *( ";" member ) "]"
//   member = octet | octet ".." octet                  (low <= high)
//   octet  = decimal 0..255
//   weight = signed decimal integer, default 1; negative for allowlists (DNSWL)
//
// Examples: `zen.spamhaus.org=127.0.0.[2..11]*3`, `list.dnswl.org=127.0.[0..255].[1;2;3]*-2`,
// `b.barracudacentral.org*2`. Without a filter any answer lists the client. As in Postfix's
// postconf, a value may hold several sites separated by commas or white space
// (`parseDnsblSites`). Facts from Postfix postconf(5) and src/util/ip_match.c.

export type DnsblSiteErrorCode = 'DNSBL_SITE_EMPTY' | 'DNSBL_SITE_ZONE' | 'DNSBL_SITE_FILTER' | 'DNSBL_SITE_WEIGHT';

/** A site specification that does not parse; `site` is the offending text. */
export class DnsblSiteError extends Error {
  override name = 'DnsblSiteError';
  constructor(
    readonly code: DnsblSiteErrorCode,
    readonly site: string,
    detail: string,
  ) {
    super(`bad DNSBL site "${site}": ${detail}`);
  }
}

/** One field of a filter: inclusive [low, high] ranges, any of which matches. */
export type OctetSet = readonly (readonly [number, number])[];

export interface DnsblSite {
  /** The text as given (trimmed), for messages. */
  text: string;
  /** Lower-case domain the queries go under. */
  zone: string;
  /** The filter text, or null: any answer matches. */
  filter: string | null;
  /** Four octet sets, or null when there is no filter. */
  octets: readonly [OctetSet, OctetSet, OctetSet, OctetSet] | null;
  weight: number;
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const WEIGHT = /^[+-]?[0-9]{1,9}$/;

function parseZone(text: string, site: string): string {
  const zone = text.toLowerCase();
  if (zone === '') throw new DnsblSiteError('DNSBL_SITE_ZONE', site, 'no domain name');
  if (zone.length > 253) throw new DnsblSiteError('DNSBL_SITE_ZONE', site, 'domain name longer than 253 characters');
  const labels = zone.split('.');
  for (const l of labels) {
    if (!LABEL.test(l)) throw new DnsblSiteError('DNSBL_SITE_ZONE', site, `bad domain name "${text}"`);
  }
  // Postfix's valid_hostname() refuses an all-numeric name: it would be an address.
  if (labels.every((l) => /^[0-9]+$/.test(l))) throw new DnsblSiteError('DNSBL_SITE_ZONE', site, `"${text}" is a number, not a domain name`);
  return zone;
}

function parseOctet(text: string, site: string): number {
  // ip_match.c reads any run of digits (leading zeros allowed) up to 255.
  if (!/^[0-9]{1,3}$/.test(text) || Number(text) > 255) {
    throw new DnsblSiteError('DNSBL_SITE_FILTER', site, `"${text}" is not a decimal number 0..255`);
  }
  return Number(text);
}

function parseField(text: string, site: string): OctetSet {
  if (!text.startsWith('[')) {
    const v = parseOctet(text, site);
    return [[v, v]];
  }
  if (!text.endsWith(']') || text.length < 3) throw new DnsblSiteError('DNSBL_SITE_FILTER', site, `field "${text}" needs numbers or ranges inside "[...]"`);
  const out: [number, number][] = [];
  for (const member of text.slice(1, -1).split(';')) {
    const range = member.split('..');
    if (range.length === 1) {
      const v = parseOctet(member, site);
      out.push([v, v]);
    } else if (range.length === 2) {
      const lo = parseOctet(range[0]!, site);
      const hi = parseOctet(range[1]!, site);
      if (lo > hi) throw new DnsblSiteError('DNSBL_SITE_FILTER', site, `range "${member}" runs backwards`);
      out.push([lo, hi]);
    } else {
      throw new DnsblSiteError('DNSBL_SITE_FILTER', site, `bad range "${member}"`);
    }
  }
  return out;
}

/** `d.d.d.d` with `[...]` fields to four octet sets. */
export function parseFilter(text: string, site = text): [OctetSet, OctetSet, OctetSet, OctetSet] {
  let pattern = text;
  // ip_match.c strips one pair of brackets around the whole pattern: `[127.0.0.2]`,
  // `[127.0.0.[2..11]]` (the "[" at the start must close at the very end).
  if (pattern.startsWith('[')) {
    let level = 0;
    let close = -1;
    for (let i = 0; i < pattern.length && close === -1; i++) {
      if (pattern[i] === '[') level++;
      else if (pattern[i] === ']' && --level === 0) close = i;
    }
    if (close === pattern.length - 1) pattern = pattern.slice(1, -1);
  }
  if (pattern === '') throw new DnsblSiteError('DNSBL_SITE_FILTER', site, 'empty filter');
  // Split on the dots between fields, not on the ".." of a range inside brackets.
  const fields: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '[') {
      if (depth > 0) throw new DnsblSiteError('DNSBL_SITE_FILTER', site, 'nested "["');
      depth = 1;
    } else if (c === ']') {
      if (depth === 0) throw new DnsblSiteError('DNSBL_SITE_FILTER', site, 'unmatched "]"');
      depth = 0;
    } else if (c === '.' && depth === 0) {
      fields.push(pattern.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw new DnsblSiteError('DNSBL_SITE_FILTER', site, 'missing "]"');
  fields.push(pattern.slice(start));
  if (fields.length !== 4) throw new DnsblSiteError('DNSBL_SITE_FILTER', site, `filter "${text}" needs four fields, has ${fields.length}`);
  return fields.map((f) => parseField(f, site)) as [OctetSet, OctetSet, OctetSet, OctetSet];
}

/** One site specification. */
export function parseDnsblSite(input: string): DnsblSite {
  const text = input.trim();
  if (text === '') throw new DnsblSiteError('DNSBL_SITE_EMPTY', text, 'empty site');
  // postscreen_dnsbl.c splits at the first "*", then at the first "=" of what is left.
  let rest = text;
  let weight = 1;
  const star = rest.indexOf('*');
  if (star !== -1) {
    const w = rest.slice(star + 1);
    if (!WEIGHT.test(w)) throw new DnsblSiteError('DNSBL_SITE_WEIGHT', text, `weight "${w}" is not an integer`);
    weight = Number(w);
    rest = rest.slice(0, star);
  }
  let filter: string | null = null;
  let octets: DnsblSite['octets'] = null;
  const eq = rest.indexOf('=');
  if (eq !== -1) {
    filter = rest.slice(eq + 1);
    octets = parseFilter(filter, text);
    rest = rest.slice(0, eq);
  }
  return { text, zone: parseZone(rest, text), filter, octets, weight };
}

/**
 * A list of site values, each possibly holding several sites separated by commas or white
 * space as in main.cf. Every entry is kept, duplicates too: postscreen counts each one.
 */
export function parseDnsblSites(values: readonly string[]): DnsblSite[] {
  const out: DnsblSite[] = [];
  for (const v of values) {
    for (const part of v.split(/[\s,]+/)) if (part !== '') out.push(parseDnsblSite(part));
  }
  return out;
}

/** Whether an A answer (dotted quad) passes a site's filter; no filter passes any answer. */
export function filterMatches(site: Pick<DnsblSite, 'octets'>, answer: readonly number[]): boolean {
  if (!site.octets) return true;
  if (answer.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const v = answer[i]!;
    if (!site.octets[i]!.some(([lo, hi]) => v >= lo && v <= hi)) return false;
  }
  return true;
}

/** The distinct zones of a site list, in first-seen order: one query per zone serves all its sites. */
export function zonesOf(sites: readonly DnsblSite[]): string[] {
  return [...new Set(sites.map((s) => s.zone))];
}
