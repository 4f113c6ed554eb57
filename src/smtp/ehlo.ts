// EHLO replies, RFC 5321 §4.1.1.1: the first line greets, each further line is
// `keyword [params]`. Keywords are case-insensitive.

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
  return formatReply(250, lines);
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
