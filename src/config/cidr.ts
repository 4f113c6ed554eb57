// CIDR lists for trusted_proxies: parsed once, matched per connection.
import { ConfigValueError, show } from './errors.js';
import { isV4Mapped, parseIPv4, parseIPv6, parseIp } from './ip.js';

export interface Cidr {
  family: 4 | 6;
  prefix: number;
  /** Network address as 32-bit words (1 for IPv4, 4 for IPv6), host bits cleared. */
  network: number[];
  /** Per-word masks matching `network`. */
  mask: number[];
}

const PREFIX = /^(?:0|[1-9]\d{0,2})$/;

function masks(words: number, prefix: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < words; i++) {
    const bits = Math.max(0, Math.min(32, prefix - 32 * i));
    out.push(bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);
  }
  return out;
}

function make(family: 4 | 6, words: number[], prefix: number): Cidr {
  const mask = masks(words.length, prefix);
  return { family, prefix, network: words.map((w, i) => (w & (mask[i] as number)) >>> 0), mask };
}

/**
 * Parse `10.0.0.0/8`, `2001:db8::/32`, or a bare IP (/32, /128). Host bits are cleared.
 * `::ffff:a.b.c.d/n` with n >= 96 becomes the IPv4 network a.b.c.d/(n-96), so it matches
 * the same clients however the socket reports them.
 */
export function parseCidr(s: string): Cidr {
  const text = s.trim();
  const bad = (why: string): ConfigValueError =>
    new ConfigValueError(`expected an IP address or CIDR network (e.g. 10.0.0.0/8 or 2001:db8::/32), got ${show(s)} (${why})`);
  const slash = text.indexOf('/');
  const addr = slash === -1 ? text : text.slice(0, slash);
  if (addr.includes('%')) throw bad('zone ids are not allowed');
  const v6 = addr.includes(':');
  const max = v6 ? 128 : 32;
  let prefix = max;
  if (slash !== -1) {
    const p = text.slice(slash + 1);
    if (!PREFIX.test(p) || Number(p) > max) throw bad(`prefix length must be 0-${max}`);
    prefix = Number(p);
  }
  if (!v6) {
    const w = parseIPv4(addr);
    if (w === null) throw bad(/^[\d.]+$/.test(addr) ? `"${addr}" is not an IPv4 address` : `"${addr}" is not an IP address`);
    return make(4, [w], prefix);
  }
  const w = parseIPv6(addr);
  if (w === null) throw bad(`"${addr}" is not an IPv6 address`);
  if (prefix >= 96 && isV4Mapped(w)) return make(4, [w[3]], prefix - 96);
  return make(6, w, prefix);
}

export class CidrList {
  private readonly v4: Cidr[] = [];
  private readonly v6: Cidr[] = [];

  /** Throws ConfigValueError naming the first invalid entry. */
  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const parsed = parseCidr(c);
      (parsed.family === 4 ? this.v4 : this.v6).push(parsed);
    }
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }

  /** Whether `ip` (as a socket reports it, `::ffff:` form included) is in the list. Bad input: false. */
  contains(ip: string): boolean {
    if (this.v4.length + this.v6.length === 0) return false;
    const a = parseIp(ip);
    if (a === null) return false;
    const rules = a.family === 4 ? this.v4 : this.v6;
    const w = a.words;
    outer: for (const r of rules) {
      for (let i = 0; i < w.length; i++) {
        if ((((w[i] as number) & (r.mask[i] as number)) >>> 0) !== r.network[i]) continue outer;
      }
      return true;
    }
    return false;
  }
}
