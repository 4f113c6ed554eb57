// IP address text to numbers, strict, shared by config/ (CIDR matching, address checks),
// proxy/ (header bytes), server/ and auth/ (per-client keys, dual-stack peers). Imports nothing: the bottom layer.

const DEC_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * Dotted-quad IPv4 to its four octets. No leading zeros (some tools read them as octal),
 * as proxy-protocol.txt §2.1 also demands.
 */
export function ipv4Octets(text: string): [number, number, number, number] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const p of parts) {
    if (!DEC_OCTET.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out.push(v);
  }
  return out as [number, number, number, number];
}

function groups(part: string, v4Tail: boolean): number[] | null {
  if (part === '') return [];
  const parts = part.split(':');
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    if (v4Tail && i === parts.length - 1 && p.includes('.')) {
      // A trailing dotted quad stands for the last two groups (RFC 4291 §2.2, form 3).
      const b = ipv4Octets(p);
      if (!b) return null;
      out.push((b[0] << 8) | b[1], (b[2] << 8) | b[3]);
    } else if (HEX_GROUP.test(p)) {
      out.push(parseInt(p, 16));
    } else {
      return null;
    }
  }
  return out;
}

/**
 * IPv6 text in any RFC 4291 §2.2 form (`::`, embedded IPv4) to its eight 16-bit groups.
 * No zone id: callers that accept one strip it first.
 */
export function ipv6Groups(text: string): number[] | null {
  const dbl = text.indexOf('::');
  if (dbl === -1) {
    const all = groups(text, true);
    return all && all.length === 8 ? all : null;
  }
  if (text.indexOf('::', dbl + 1) !== -1) return null;
  const left = groups(text.slice(0, dbl), false);
  const right = groups(text.slice(dbl + 2), true);
  if (!left || !right || left.length + right.length > 7) return null;
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** The IPv4 address an IPv4-mapped IPv6 address (`::ffff:0:0/96`, RFC 4291 §2.5.5.2) stands for, or null. */
export function mappedIPv4(groups: readonly number[]): string | null {
  if (groups.length !== 8 || !groups.slice(0, 5).every((g) => g === 0) || groups[5] !== 0xffff) return null;
  const [hi, lo] = [groups[6]!, groups[7]!];
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

/**
 * An address as a dual-stack socket reports an IPv4 peer (`::ffff:a.b.c.d`) becomes the
 * plain `a.b.c.d`; anything else, `undefined` aside (''), is returned as it is. Only the
 * dotted form is rewritten: it is the one Node, smtp-server and HAProxy produce.
 */
export function unmapIPv4(address: string | undefined): string {
  if (!address) return '';
  if (address.length < 8 || address.slice(0, 7).toLowerCase() !== '::ffff:') return address;
  const tail = address.slice(7);
  return ipv4Octets(tail) ? tail : address;
}

/**
 * The key a client is counted under (admission limits, AUTH failure counts): an IPv4
 * address as is, an IPv4-mapped IPv6 address as its IPv4 address (the same client either
 * way), an IPv6 address by its /64 (one subscriber line usually holds a whole /64, so
 * counting single addresses would let one client rotate through 2^64 of them), written
 * `a:b:c:d::/64`. A zone id is ignored; text that is no address is its own key.
 */
export function clientKey(address: string): string {
  if (!address.includes(':')) return address;
  const zone = address.indexOf('%');
  const g = ipv6Groups(zone === -1 ? address : address.slice(0, zone));
  if (!g) return address;
  return mappedIPv4(g) ?? `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}
