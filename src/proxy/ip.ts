// Strict IP text <-> bytes. node:net validates; we add what it allows but the spec does not
// (zone ids) and produce one canonical text form so addresses compare as strings.

import { isIPv4, isIPv6 } from 'node:net';
import { ipv4Octets, ipv6Groups } from '../net/ip.js';

/** proxy-protocol.txt §2.1: four decimal octets 0–255, no leading zeros. */
export function parseIPv4(text: string): Uint8Array | null {
  if (!isIPv4(text)) return null;
  const b = ipv4Octets(text);
  return b ? Uint8Array.from(b) : null;
}

/** IPv6 text (any valid RFC 4291 form, embedded IPv4 allowed, no zone id) to 16 bytes. */
export function parseIPv6(text: string): Uint8Array | null {
  // Zone ids name a local interface; meaningless to the receiver (and node:net accepts them).
  if (text.includes('%') || !isIPv6(text)) return null;
  const words = ipv6Groups(text);
  if (!words) return null;
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

export function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/**
 * RFC 5952 §4: lowercase, no leading zeros, the longest run (first on ties) of two or more
 * zero groups as "::". §5: IPv4-mapped addresses as ::ffff:a.b.c.d, which is also how
 * Node reports v4 peers on dual-stack sockets.
 */
export function formatIPv6(b: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[2 * i] << 8) | b[2 * i + 1]);
  if (w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0 && w[4] === 0 && w[5] === 0xffff) {
    return `::ffff:${formatIPv4(b.subarray(12, 16))}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((x) => x.toString(16)).join(':');
  if (bestLen < 2) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}

/** ::ffff:a.b.c.d as 16 bytes. */
export function mapIPv4(v4: Uint8Array): Uint8Array {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(v4, 12);
  return out;
}

/**
 * The unspecified address in canonical text (RFC 1122 §3.2.1.3 0.0.0.0, RFC 4291 §2.5.2 ::,
 * and its v4-mapped form): an address that may only ever be a source while a host does not
 * know its own, never a client's.
 */
export function isUnspecified(canonical: string): boolean {
  return canonical === '0.0.0.0' || canonical === '::' || canonical === '::ffff:0.0.0.0';
}
