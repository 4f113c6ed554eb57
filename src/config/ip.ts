// IP address parsing to 32-bit words, for CIDR matching and address validation.
// Strict: dotted-quad IPv4 without leading zeros (they read as octal to some tools).

import { ipv4Octets, ipv6Groups } from '../net/ip.js';

export type IpWords = { family: 4; words: [number] } | { family: 6; words: [number, number, number, number] };

export function parseIPv4(s: string): number | null {
  const b = ipv4Octets(s);
  return b === null ? null : ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

/** IPv6 (with `::`, embedded IPv4 and an optional `%zone`) to four 32-bit words. */
export function parseIPv6(input: string): [number, number, number, number] | null {
  const zone = input.indexOf('%');
  const g = ipv6Groups(zone === -1 ? input : input.slice(0, zone));
  if (g === null) return null;
  const w = (i: number): number => ((g[i]! << 16) | g[i + 1]!) >>> 0;
  return [w(0), w(2), w(4), w(6)];
}

/** True for `::ffff:a.b.c.d`, an IPv4 client as a dual-stack socket reports it. */
export function isV4Mapped(w: readonly number[]): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

/** Parse an IPv4 or IPv6 address; v4-mapped IPv6 is returned as IPv4 (same client either way). */
export function parseIp(s: string): IpWords | null {
  if (!s.includes(':')) {
    const v4 = parseIPv4(s);
    return v4 === null ? null : { family: 4, words: [v4] };
  }
  const v6 = parseIPv6(s);
  if (v6 === null) return null;
  if (isV4Mapped(v6)) return { family: 4, words: [v6[3]] };
  return { family: 6, words: v6 };
}
