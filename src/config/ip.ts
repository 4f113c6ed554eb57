// IP address parsing to 32-bit words, for CIDR matching and address validation.
// Strict: dotted-quad IPv4 without leading zeros (they read as octal to some tools).

export type IpWords = { family: 4; words: [number] } | { family: 6; words: [number, number, number, number] };

const V4_PART = /^(?:0|[1-9]\d{0,2})$/;
const HEX_GROUP = /^[0-9a-f]{1,4}$/i;

export function parseIPv4(s: string): number | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!V4_PART.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n >>> 0;
}

/** IPv6 (with `::`, embedded IPv4 and an optional `%zone`) to four 32-bit words. */
export function parseIPv6(input: string): [number, number, number, number] | null {
  let s = input;
  const zone = s.indexOf('%');
  if (zone !== -1) s = s.slice(0, zone);
  // A trailing dotted quad stands for the last two groups; rewrite it as hex.
  const lastColon = s.lastIndexOf(':');
  if (lastColon !== -1 && s.includes('.', lastColon)) {
    const v4 = parseIPv4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    s = `${s.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!HEX_GROUP.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  const head = parse(halves[0] as string);
  if (head === null) return null;
  if (halves.length === 2) {
    const rest = parse(halves[1] as string);
    if (rest === null) return null;
    const used = head.length + rest.length;
    if (used > 7) return null;
    groups = [...head, ...new Array<number>(8 - used).fill(0), ...rest];
  } else {
    groups = head;
    if (groups.length !== 8) return null;
  }
  const w = (i: number): number => (((groups[i] as number) << 16) | (groups[i + 1] as number)) >>> 0;
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
