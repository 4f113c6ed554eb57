// EHLO replies, RFC 5321 §4.1.1.1: the first line greets, each further line is
// `keyword [params]`. Keywords are case-insensitive.

import { C250Completed } from './codes.js';
import { formatReply, type Reply } from './reply.js';

/** Keyword (upper-cased) -> parameters. */
export type Capabilities = Map<string, string[]>;

export function parseEhlo(reply: Reply): Capabilities {
  const caps: Capabilities = new Map();
  for (let i = 1; i < reply.lines.length; i++) {
    const words = reply.lines[i]!.trim().split(/ +/);
    const key = words[0]?.toUpperCase();
    if (!key) continue;
    // Old servers say `AUTH=LOGIN`; the `=` form is an alias of the space form.
    const eq = key.indexOf('=');
    if (eq > 0) caps.set(key.slice(0, eq), [key.slice(eq + 1), ...words.slice(1)]);
    else caps.set(key, words.slice(1));
  }
  return caps;
}

export function renderEhlo(greeting: string, caps: Capabilities): string {
  const lines = [greeting];
  for (const [key, params] of caps) lines.push(params.length ? `${key} ${params.join(' ')}` : key);
  return formatReply(C250Completed, lines);
}

/** SIZE parameter (RFC 1870): 0 or absent means no fixed limit. */
export function capSize(caps: Capabilities): number | null {
  const p = caps.get('SIZE');
  if (!p) return null;
  // RFC 1870: `SIZE [1*DIGIT]`. Number() alone would also take `1e3`, `0x10`, `+10`.
  const v = p[0] ?? '0';
  if (!/^\d+$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

export interface Limits {
  mailmax: number | null;
  rcptmax: number | null;
  rcptdomainmax: number | null;
}

const LIMIT_NAMES = { MAILMAX: 'mailmax', RCPTMAX: 'rcptmax', RCPTDOMAINMAX: 'rcptdomainmax' } as const;

/**
 * LIMITS parameters (RFC 9422 §3): `NAME=value` pairs. A malformed list is ignored as a
 * whole (§3.7); an unknown name or a bad value ignores just that limit. Values are
 * 1..999999 with no leading zero (§4).
 */
export function parseLimits(caps: Capabilities): Limits {
  const out: Limits = { mailmax: null, rcptmax: null, rcptdomainmax: null };
  const params = caps.get('LIMITS');
  if (!params) return out;
  for (const p of params) {
    if (!/^[A-Za-z0-9_-]+(=[\x21-\x3a\x3c-\x7e]+)?$/.test(p)) return { mailmax: null, rcptmax: null, rcptdomainmax: null };
  }
  for (const p of params) {
    const [name, value] = p.split('=') as [string, string | undefined];
    const key = LIMIT_NAMES[name.toUpperCase() as keyof typeof LIMIT_NAMES];
    if (!key || value === undefined || !/^[1-9]\d{0,5}$/.test(value)) continue;
    out[key] = Number(value);
  }
  return out;
}

/** `LIMITS` parameters for the configured values, or null when none is set (RFC 9422 §3). */
export function renderLimits(l: Limits): string[] | null {
  const out: string[] = [];
  if (l.mailmax !== null) out.push(`MAILMAX=${l.mailmax}`);
  if (l.rcptmax !== null) out.push(`RCPTMAX=${l.rcptmax}`);
  if (l.rcptdomainmax !== null) out.push(`RCPTDOMAINMAX=${l.rcptdomainmax}`);
  return out.length ? out : null;
}

/** The stricter of two limit sets (null: no limit). */
export function lowerLimits(a: Limits, b: Limits): Limits {
  const min = (x: number | null, y: number | null) => (x === null ? y : y === null ? x : Math.min(x, y));
  return { mailmax: min(a.mailmax, b.mailmax), rcptmax: min(a.rcptmax, b.rcptmax), rcptdomainmax: min(a.rcptdomainmax, b.rcptdomainmax) };
}
