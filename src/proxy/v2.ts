// PROXY v2 binary header parser (proxy-protocol.txt §2.2). Incremental: rejects as soon as
// the bytes so far prove the header invalid, and never looks past 16+len.

import { TextDecoder } from 'node:util';
import { V2_ADDRESS_LENGTH, V2_FIXED_LENGTH, V2_SIGNATURE, V2_UNIX_PATH_LENGTH } from './constants.js';
import { crc32c } from './crc32c.js';
import { ProxyProtocolError } from './errors.js';
import { formatIPv4, formatIPv6, isUnspecified } from './ip.js';
import { addTlv, checkTlvHeader, walkTlvs, type TlvInfo } from './tlv.js';
import type { ParseResult, ProxyEndpoint, ProxyHeader } from './types.js';

const FAMILIES = ['unspec', 'tcp4', 'tcp6', 'unix'] as const;
const TRANSPORTS = ['unspec', 'stream', 'dgram'] as const;
const INCOMPLETE: ParseResult = { kind: 'incomplete' };
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseV2(buf: Uint8Array, maxLength: number): ParseResult {
  const n = buf.length;
  for (let i = 0; i < V2_SIGNATURE.length && i < n; i++) {
    if (buf[i] !== V2_SIGNATURE[i]) throw new ProxyProtocolError('BAD_SIGNATURE', 'not the v2 signature', i);
  }
  if (n < 13) return INCOMPLETE;

  // §2.2 byte 13: version must be 2; command 0 LOCAL, 1 PROXY, others dropped.
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) throw new ProxyProtocolError('BAD_VERSION', `version ${verCmd >> 4}`, 12);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw new ProxyProtocolError('BAD_COMMAND', `command ${cmd}`, 12);
  if (n < 14) return INCOMPLETE;

  // §2.2 byte 14: family 0..3, transport 0..2; anything else must be rejected.
  const famByte = buf[13];
  const fam = famByte >> 4;
  const tr = famByte & 0x0f;
  if (fam > 3 || tr > 2) throw new ProxyProtocolError('BAD_FAMILY', `family/transport 0x${famByte.toString(16)}`, 13);
  if (n < V2_FIXED_LENGTH) return INCOMPLETE;

  const len = (buf[14] << 8) | buf[15];
  if (len > maxLength) throw new ProxyProtocolError('TOO_LONG', `len ${len} exceeds ${maxLength}`, 14);
  const total = V2_FIXED_LENGTH + len;
  const addrLen = V2_ADDRESS_LENGTH[fam];
  const proxy = cmd === 1;
  if (proxy && len < addrLen) {
    throw new ProxyProtocolError('BAD_LENGTH', `len ${len} cannot hold the ${addrLen}-byte address block`, 14);
  }
  // LOCAL ignores addresses (§2.2), but a sender may still include the block: skip it when
  // len has room for it, otherwise whatever len covers must be TLVs.
  const tlvStart = V2_FIXED_LENGTH + (len >= addrLen ? addrLen : 0);
  const avail = Math.min(n, total);

  let source: ProxyEndpoint | null = null;
  let destination: ProxyEndpoint | null = null;
  if (proxy && addrLen > 0 && avail >= tlvStart) {
    [source, destination] = decodeAddresses(buf, fam);
    if (fam !== 3) checkSource(source, fam === 1 ? 8 : 32);
  }

  const spans = walkTlvs(buf, tlvStart, total, avail, checkTlvHeader);
  const info: TlvInfo = { tlvs: [] };
  for (const s of spans) {
    if (s.valueEnd > avail) break;
    addTlv(info, s.type, Buffer.from(buf.subarray(s.valueStart, s.valueEnd)), s.offset);
  }
  if (n < total) return INCOMPLETE;

  let crc32cChecked = false;
  if (info.crcValueOffset !== undefined) {
    // §2.2.3: CRC32C over the whole header with the checksum field zeroed, stored big-endian.
    const at = info.crcValueOffset;
    const copy = Buffer.from(buf.subarray(0, total));
    const stored = copy.readUInt32BE(at);
    copy.fill(0, at, at + 4);
    const computed = crc32c(copy);
    if (computed !== stored) {
      throw new ProxyProtocolError(
        'CRC_MISMATCH',
        `CRC32C 0x${stored.toString(16).padStart(8, '0')} != computed 0x${computed.toString(16).padStart(8, '0')}`,
        at - 3,
      );
    }
    crc32cChecked = true;
  }

  const header: ProxyHeader = {
    version: 2,
    command: proxy ? 'proxy' : 'local',
    family: FAMILIES[fam],
    transport: TRANSPORTS[tr],
    source,
    destination,
    tlvs: info.tlvs,
  };
  if (info.authority !== undefined) header.authority = info.authority;
  if (info.uniqueId !== undefined) header.uniqueId = info.uniqueId;
  if (info.ssl !== undefined) header.ssl = info.ssl;
  if (info.alpn !== undefined) header.alpn = info.alpn;
  if (crc32cChecked) header.crc32cChecked = true;
  return { kind: 'header', header, length: total };
}

/**
 * The PROXY command relays a real connection (§2.2), and no TCP connection comes from the
 * unspecified address or from port 0 (RFC 9293 §3.1: port 0 is no port): such a header
 * would make the backend log a client that does not exist. A sender that does not know
 * the client must say LOCAL (or UNSPEC), which keeps the connection's own addresses.
 * `portAt`: the source port's offset in the address block.
 */
function checkSource(source: ProxyEndpoint, portAt: number): void {
  if (isUnspecified(source.address)) {
    throw new ProxyProtocolError('UNSPECIFIED_SOURCE', `source address ${source.address} is unspecified (use LOCAL when the client is unknown)`, V2_FIXED_LENGTH);
  }
  if (source.port === 0) {
    throw new ProxyProtocolError('UNSPECIFIED_SOURCE', 'source port 0 (use LOCAL when the client is unknown)', V2_FIXED_LENGTH + portAt);
  }
}

/** §2.2 address block: src addr, dst addr, then (INET/INET6) src port, dst port. */
function decodeAddresses(buf: Uint8Array, fam: number): [ProxyEndpoint, ProxyEndpoint] {
  const b = V2_FIXED_LENGTH;
  const port = (at: number): number => (buf[at] << 8) | buf[at + 1];
  if (fam === 1) {
    return [
      { address: formatIPv4(buf.subarray(b, b + 4)), port: port(b + 8) },
      { address: formatIPv4(buf.subarray(b + 4, b + 8)), port: port(b + 10) },
    ];
  }
  if (fam === 2) {
    return [
      { address: formatIPv6(buf.subarray(b, b + 16)), port: port(b + 32) },
      { address: formatIPv6(buf.subarray(b + 16, b + 32)), port: port(b + 34) },
    ];
  }
  return [
    { address: unixPath(buf, b), port: 0 },
    { address: unixPath(buf, b + V2_UNIX_PATH_LENGTH), port: 0 },
  ];
}

/** sun_path: bytes up to the first NUL (an abstract-namespace path therefore reads as ''). */
function unixPath(buf: Uint8Array, at: number): string {
  const field = buf.subarray(at, at + V2_UNIX_PATH_LENGTH);
  const nul = field.indexOf(0);
  try {
    return utf8.decode(nul === -1 ? field : field.subarray(0, nul));
  } catch {
    throw new ProxyProtocolError('BAD_ADDRESS', 'UNIX path is not valid UTF-8', at);
  }
}
