// The DNS name a DNSBL is asked for an address (RFC 5782 §2.1 for IPv4, §2.4 for IPv6).
// Pure.

import { ipv4Octets, ipv6Groups, mappedIPv4 } from '../net/ip.js';

/**
 * The reversed-address labels for a client address, without the zone:
 * - IPv4 `192.0.2.99` → `99.2.0.192` (octets reversed, RFC 5782 §2.1);
 * - IPv6 → 32 hex nibbles, least significant first, lower case (RFC 5782 §2.4);
 * - an IPv4-mapped IPv6 address (`::ffff:192.0.2.99`) is asked as the IPv4 address it
 *   stands for, as dual-stack sockets report IPv4 peers that way.
 * Null when the text is not an IP address. A zone id (`fe80::1%eth0`) is dropped.
 */
export function reversedAddress(address: string): string | null {
  const v4 = ipv4Octets(address);
  if (v4) return `${v4[3]}.${v4[2]}.${v4[1]}.${v4[0]}`;
  const pct = address.indexOf('%');
  const groups = ipv6Groups(pct === -1 ? address : address.slice(0, pct));
  if (!groups) return null;
  const mapped = mappedIPv4(groups);
  if (mapped) return reversedAddress(mapped);
  const nibbles: string[] = [];
  for (let i = 7; i >= 0; i--) {
    const g = groups[i]!;
    nibbles.push((g & 0xf).toString(16), ((g >> 4) & 0xf).toString(16), ((g >> 8) & 0xf).toString(16), ((g >> 12) & 0xf).toString(16));
  }
  return nibbles.join('.');
}

/** The query name for `address` under `zone`, or null when `address` is not an IP address. */
export function dnsblQueryName(address: string, zone: string): string | null {
  const rev = reversedAddress(address);
  return rev === null ? null : `${rev}.${zone}`;
}
