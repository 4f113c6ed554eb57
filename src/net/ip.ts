// IP address text to numbers, strict, shared by config/ (CIDR matching, address checks),
// proxy/ (header bytes) and server/ (per-client keys). Imports nothing: the bottom layer.

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
