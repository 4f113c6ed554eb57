// PROXY v1 text header parser (proxy-protocol.txt §2.1). Incremental: every prefix is
// checked as far as it goes, so a bad line is refused before its CRLF arrives.

import { CR, LF, V1_MAX_LENGTH, V1_PREFIX } from './constants.js';
import { ProxyProtocolError } from './errors.js';
import { formatIPv6, isUnspecified, parseIPv4, parseIPv6 } from './ip.js';
import type { ParseResult, ProxyHeader } from './types.js';

const INCOMPLETE: ParseResult = { kind: 'incomplete' };
const PROTOCOLS = ['TCP4', 'TCP6', 'UNKNOWN'] as const;
const FULL_PORT = /^(?:0|[1-9][0-9]{0,4})$/;

export function parseV1(buf: Uint8Array): ParseResult {
  const n = buf.length;
  for (let i = 0; i < V1_PREFIX.length && i < n; i++) {
    if (buf[i] !== V1_PREFIX[i]) throw new ProxyProtocolError('BAD_SIGNATURE', 'expected "PROXY "', i);
  }
  if (n <= V1_PREFIX.length) return INCOMPLETE;

  // §2.1: the line ends at CRLF within 107 bytes; a lone CR or LF never ends it.
  const limit = Math.min(n, V1_MAX_LENGTH);
  let stop = limit;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (buf[i] === CR || buf[i] === LF) {
      stop = i;
      break;
    }
  }
  const hasCr = stop < limit && buf[stop] === CR;
  // Fields first, then the terminator, so the same bad line gives the same error however
  // its bytes were split. After a CR the content is final: only LF may follow.
  const text = Buffer.from(buf.buffer, buf.byteOffset + V1_PREFIX.length, stop - V1_PREFIX.length).toString('latin1');
  const header = checkLine(text, hasCr);
  if (stop < limit) {
    if (!hasCr) throw new ProxyProtocolError('BAD_FORMAT', 'LF without CR', stop);
    if (stop + 2 > V1_MAX_LENGTH) throw new ProxyProtocolError('TOO_LONG', `no CRLF in ${V1_MAX_LENGTH} bytes`, stop);
    if (stop + 1 < n && buf[stop + 1] !== LF) throw new ProxyProtocolError('BAD_FORMAT', 'CR not followed by LF', stop + 1);
  } else if (n >= V1_MAX_LENGTH) {
    throw new ProxyProtocolError('TOO_LONG', `no CRLF in ${V1_MAX_LENGTH} bytes`, V1_MAX_LENGTH);
  }
  if (!hasCr || stop + 1 >= n || header === null) return INCOMPLETE;
  return { kind: 'header', header, length: stop + 2 };
}

/** Validates the text after "PROXY " (final: the CR has been seen). Returns the header when final. */
function checkLine(text: string, final: boolean): ProxyHeader | null {
  const tokens = text.split(' ');
  const proto = tokens[0];
  if (tokens.length === 1 && !final) {
    if (!PROTOCOLS.some((p) => p.startsWith(proto))) {
      throw new ProxyProtocolError('BAD_FAMILY', `unknown protocol "${printable(proto)}"`, V1_PREFIX.length);
    }
    return null;
  }
  // §2.1: after UNKNOWN, anything up to the CRLF is ignored.
  if (proto === 'UNKNOWN') {
    return final
      ? { version: 1, command: 'proxy', family: 'unknown', transport: 'unspec', source: null, destination: null, tlvs: [] }
      : null;
  }
  if (proto !== 'TCP4' && proto !== 'TCP6') {
    throw new ProxyProtocolError('BAD_FAMILY', `unknown protocol "${printable(proto)}"`, V1_PREFIX.length);
  }
  const v6 = proto === 'TCP6';
  const fields = tokens.slice(1);
  let at = V1_PREFIX.length + proto.length + 1;
  const values: string[] = [];
  // Fields in order, so the first bad byte decides the error; then the count.
  for (let i = 0; i < fields.length && i < 4; i++) {
    const f = fields[i];
    const done = final || i < fields.length - 1;
    if (i < 2) {
      if (done) values.push(fullAddress(f, v6, at));
      else checkAddressPrefix(f, v6, at);
      // TCP4/TCP6 name a real connection; a sender that does not know it says UNKNOWN.
      if (done && i === 0 && isUnspecified(values[0])) {
        throw new ProxyProtocolError('UNSPECIFIED_SOURCE', `source address ${values[0]} is unspecified (use UNKNOWN when the client is unknown)`, at);
      }
    } else if (done) {
      if (!FULL_PORT.test(f) || Number(f) > 65535) throw new ProxyProtocolError('BAD_PORT', `bad port "${printable(f)}"`, at);
      // RFC 9293 §3.1: port 0 is no port a connection comes from.
      if (i === 2 && f === '0') throw new ProxyProtocolError('UNSPECIFIED_SOURCE', 'source port 0 (use UNKNOWN when the client is unknown)', at);
      values.push(f);
    } else {
      checkPortPrefix(f, at);
    }
    at += f.length + 1;
  }
  // Exactly: src SP dst SP sport SP dport.
  if (fields.length > 4) throw new ProxyProtocolError('BAD_FORMAT', 'more than 6 fields', at - 1);
  if (final && fields.length < 4) {
    throw new ProxyProtocolError('BAD_FORMAT', `${fields.length + 2} fields, expected 6`, at - 1);
  }
  if (!final) return null;
  return {
    version: 1,
    command: 'proxy',
    family: v6 ? 'tcp6' : 'tcp4',
    transport: 'stream',
    source: { address: values[0], port: Number(values[2]) },
    destination: { address: values[1], port: Number(values[3]) },
    tlvs: [],
  };
}

/** §2.1: "The advertised protocol family dictates what format to use." */
function fullAddress(text: string, v6: boolean, at: number): string {
  const as6 = parseIPv6(text);
  const as4 = parseIPv4(text);
  if (v6 && as6) return formatIPv6(as6);
  if (!v6 && as4) return text;
  if (as4 || as6) {
    throw new ProxyProtocolError('FAMILY_MISMATCH', `"${text}" is not ${v6 ? 'IPv6' : 'IPv4'}`, at);
  }
  throw new ProxyProtocolError('BAD_ADDRESS', `bad ${v6 ? 'IPv6' : 'IPv4'} address "${printable(text)}"`, at);
}

// A partial token that cannot become an address of the advertised family is refused at
// once. FAMILY_MISMATCH needs the whole token (a prefix like "2001" or "01" is ambiguous),
// so early refusals say BAD_ADDRESS.
function checkAddressPrefix(text: string, v6: boolean, at: number): void {
  if (v6 ? isIPv6Prefix(text) : isIPv4Prefix(text)) return;
  throw new ProxyProtocolError('BAD_ADDRESS', `bad ${v6 ? 'IPv6' : 'IPv4'} address "${printable(text)}"`, at);
}

/** Could `text` still grow into a strict dotted quad? */
function isIPv4Prefix(text: string): boolean {
  if (text.length > 15 || !/^[0-9.]*$/.test(text)) return false;
  const parts = text.split('.');
  if (parts.length > 4) return false;
  return parts.every((p, i) => {
    const last = i === parts.length - 1;
    if (p === '') return last;
    if (p.length > 3 || (p.length > 1 && p[0] === '0')) return false;
    return Number(p) <= 255;
  });
}

/** Could `text` still grow into an IPv6 address (hex groups, one "::", optional dotted tail)? */
function isIPv6Prefix(text: string): boolean {
  // 45 = six groups plus a dotted quad, the longest IPv6 text form.
  if (text.length > 45 || !/^[0-9a-fA-F:.]*$/.test(text) || text.includes(':::')) return false;
  const dbl = text.indexOf('::');
  if (dbl !== -1 && text.indexOf('::', dbl + 1) !== -1) return false;
  const lastColon = text.lastIndexOf(':');
  const head = text.slice(0, lastColon + 1);
  const tail = text.slice(lastColon + 1);
  if (head.includes('.') || (lastColon === -1 && tail.includes('.'))) return false;
  const groups = head.split(':').filter((g) => g !== '');
  if (groups.some((g) => g.length > 4) || groups.length > 7) return false;
  return tail.includes('.') ? isIPv4Prefix(tail) && groups.length <= 6 : tail.length <= 4;
}

function checkPortPrefix(text: string, at: number): void {
  const ok = /^[0-9]{0,5}$/.test(text) && !(text.length > 1 && text[0] === '0') && Number(text) <= 65535;
  if (!ok) throw new ProxyProtocolError('BAD_PORT', `bad port "${printable(text)}"`, at);
}

/** Keeps error messages single-line and ASCII whatever the peer sent. */
function printable(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 48 ? `${clean.slice(0, 48)}...` : clean;
}
