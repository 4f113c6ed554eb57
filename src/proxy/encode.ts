// PROXY header encoders. Everything emitted here is accepted by our own parser: TLVs go
// through the same checks (tlv.ts) before they are written.

import { PP2_TYPE, V2_FIXED_LENGTH, V2_SIGNATURE } from './constants.js';
import { crc32c } from './crc32c.js';
import { ProxyProtocolError } from './errors.js';
import { formatIPv6, mapIPv4, parseIPv4, parseIPv6 } from './ip.js';
import { addTlv, type TlvInfo } from './tlv.js';
import type { ProxyEndpoint, ProxyTlv, V1EncodeInput, V2EncodeInput, V2SslInput } from './types.js';

/** proxy-protocol.txt §2.1. 'unknown' is sent in the short form "PROXY UNKNOWN\r\n". */
export function encodeProxyV1(h: V1EncodeInput): Buffer {
  if (h.family === 'unknown') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  if (h.family !== 'tcp4' && h.family !== 'tcp6') {
    throw new ProxyProtocolError('BAD_FAMILY', `v1 family must be tcp4, tcp6 or unknown`);
  }
  const { source, destination } = requireEndpoints(h.source, h.destination);
  const v6 = h.family === 'tcp6';
  const src = v1Address(source.address, v6);
  const dst = v1Address(destination.address, v6);
  checkPort(source.port);
  checkPort(destination.port);
  return Buffer.from(`PROXY ${v6 ? 'TCP6' : 'TCP4'} ${src} ${dst} ${source.port} ${destination.port}\r\n`, 'latin1');
}

/**
 * proxy-protocol.txt §2.2. PROXY with both endpoints: INET when both are IPv4, otherwise
 * INET6 with any IPv4 one v4-mapped (as HAProxy does); PROXY with neither: UNSPEC.
 * LOCAL never carries addresses (§2.2 "it should not present any address"), so endpoints
 * given with LOCAL are ignored. Transport is always STREAM for addressed headers.
 */
export function encodeProxyV2(h: V2EncodeInput): Buffer {
  if (h.command !== 'local' && h.command !== 'proxy') {
    throw new ProxyProtocolError('BAD_COMMAND', 'command must be local or proxy');
  }
  let famByte = 0x00;
  let addr = Buffer.alloc(0);
  if (h.command === 'proxy' && (h.source !== undefined || h.destination !== undefined)) {
    const { source, destination } = requireEndpoints(h.source, h.destination);
    const s = binaryAddress(source.address);
    const d = binaryAddress(destination.address);
    checkPort(source.port);
    checkPort(destination.port);
    if (s.length === 4 && d.length === 4) {
      famByte = 0x11;
      addr = Buffer.alloc(12);
      addr.set(s, 0);
      addr.set(d, 4);
      addr.writeUInt16BE(source.port, 8);
      addr.writeUInt16BE(destination.port, 10);
    } else {
      famByte = 0x21;
      addr = Buffer.alloc(36);
      addr.set(s.length === 4 ? mapIPv4(s) : s, 0);
      addr.set(d.length === 4 ? mapIPv4(d) : d, 16);
      addr.writeUInt16BE(source.port, 32);
      addr.writeUInt16BE(destination.port, 34);
    }
  }

  const tlvs: ProxyTlv[] = [];
  if (h.alpn !== undefined) tlvs.push({ type: PP2_TYPE.ALPN, value: Buffer.from(h.alpn) });
  if (h.authority !== undefined) tlvs.push({ type: PP2_TYPE.AUTHORITY, value: utf8(h.authority, 'authority') });
  if (h.uniqueId !== undefined) tlvs.push({ type: PP2_TYPE.UNIQUE_ID, value: Buffer.from(h.uniqueId) });
  if (h.ssl !== undefined) tlvs.push({ type: PP2_TYPE.SSL, value: sslValue(h.ssl) });
  for (const t of h.tlvs ?? []) {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 0xff) {
      throw new ProxyProtocolError('BAD_TLV', `TLV type ${t.type} is not a byte`);
    }
    if (t.type === PP2_TYPE.CRC32C) throw new ProxyProtocolError('BAD_TLV', 'use the crc32c option, not a raw CRC32C TLV');
    tlvs.push({ type: t.type, value: Buffer.from(t.value) });
  }
  // Zeroed for now; filled once the whole header is laid out (§2.2.3).
  if (h.crc32c === true) tlvs.push({ type: PP2_TYPE.CRC32C, value: Buffer.alloc(4) });

  // Same rules as the parser: lengths, UTF-8, SSL layout, duplicates.
  const info: TlvInfo = { tlvs: [] };
  let total = V2_FIXED_LENGTH + addr.length;
  for (const t of tlvs) {
    if (t.value.length > 0xffff) throw new ProxyProtocolError('TOO_LONG', `TLV 0x${t.type.toString(16)} over 65535 bytes`);
    addTlv(info, t.type, t.value, total);
    total += 3 + t.value.length;
  }
  if (total - V2_FIXED_LENGTH > 0xffff) throw new ProxyProtocolError('TOO_LONG', `header of ${total} bytes exceeds the v2 maximum`);
  if (h.maxLength !== undefined && total > h.maxLength) {
    throw new ProxyProtocolError('TOO_LONG', `header of ${total} bytes exceeds maxLength ${h.maxLength}`);
  }

  const out = Buffer.alloc(total);
  out.set(V2_SIGNATURE, 0);
  out[12] = h.command === 'proxy' ? 0x21 : 0x20;
  out[13] = famByte;
  out.writeUInt16BE(total - V2_FIXED_LENGTH, 14);
  out.set(addr, V2_FIXED_LENGTH);
  let at = V2_FIXED_LENGTH + addr.length;
  for (const t of tlvs) {
    out[at] = t.type;
    out.writeUInt16BE(t.value.length, at + 1);
    out.set(t.value, at + 3);
    at += 3 + t.value.length;
  }
  if (info.crcValueOffset !== undefined) out.writeUInt32BE(crc32c(out), info.crcValueOffset);
  return out;
}

/** §2.2.6: client, verify, then VERSION, CN, CIPHER sub-TLVs (HAProxy's order). */
function sslValue(ssl: V2SslInput): Buffer {
  if (!Number.isInteger(ssl.client) || ssl.client < 0 || ssl.client > 0xff) {
    throw new ProxyProtocolError('BAD_TLV', 'ssl.client must be a byte');
  }
  if (!Number.isInteger(ssl.verify) || ssl.verify < 0 || ssl.verify > 0xffffffff) {
    throw new ProxyProtocolError('BAD_TLV', 'ssl.verify must be a 32-bit unsigned integer');
  }
  const head = Buffer.alloc(5);
  head[0] = ssl.client;
  head.writeUInt32BE(ssl.verify, 1);
  const parts: Buffer[] = [head];
  const sub = (type: number, value: Buffer): void => {
    if (value.length > 0xffff) throw new ProxyProtocolError('TOO_LONG', `SSL sub-TLV 0x${type.toString(16)} over 65535 bytes`);
    const h3 = Buffer.alloc(3);
    h3[0] = type;
    h3.writeUInt16BE(value.length, 1);
    parts.push(h3, value);
  };
  if (ssl.version !== undefined) sub(PP2_TYPE.SSL_VERSION, ascii(ssl.version, 'ssl.version'));
  if (ssl.cn !== undefined) sub(PP2_TYPE.SSL_CN, utf8(ssl.cn, 'ssl.cn'));
  if (ssl.cipher !== undefined) sub(PP2_TYPE.SSL_CIPHER, ascii(ssl.cipher, 'ssl.cipher'));
  return Buffer.concat(parts);
}

/** §2.2.6: version and cipher are US-ASCII; checked on the string, since latin1 encoding would truncate. */
function ascii(s: string, what: string): Buffer {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new ProxyProtocolError('BAD_TLV', `${what} is not printable US-ASCII`);
  return Buffer.from(s, 'latin1');
}

function utf8(s: string, what: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  // Lone surrogates would silently become U+FFFD.
  if (b.toString('utf8') !== s) throw new ProxyProtocolError('BAD_TLV', `${what} is not well-formed Unicode`);
  return b;
}

function requireEndpoints(
  source: ProxyEndpoint | undefined,
  destination: ProxyEndpoint | undefined,
): { source: ProxyEndpoint; destination: ProxyEndpoint } {
  if (source === undefined || destination === undefined) {
    throw new ProxyProtocolError('BAD_ADDRESS', 'source and destination are both required');
  }
  return { source, destination };
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ProxyProtocolError('BAD_PORT', `bad port ${port}`);
}

function v1Address(text: string, v6: boolean): string {
  const as4 = parseIPv4(text);
  const as6 = parseIPv6(text);
  if (v6 && as6) return formatIPv6(as6);
  if (!v6 && as4) return text;
  if (as4 || as6) throw new ProxyProtocolError('FAMILY_MISMATCH', `"${text}" is not ${v6 ? 'IPv6' : 'IPv4'}`);
  throw new ProxyProtocolError('BAD_ADDRESS', `bad address "${text}"`);
}

/** 4 bytes for IPv4, 16 for IPv6. */
function binaryAddress(text: string): Uint8Array {
  const b = parseIPv4(text) ?? parseIPv6(text);
  if (b === null) throw new ProxyProtocolError('BAD_ADDRESS', `bad address "${text}"`);
  return b;
}
