// PROXY v2 TLV walking and interpretation (proxy-protocol.txt §2.2, §2.2.1–§2.2.7).
// Shared by the parser and the encoder, so the encoder never emits what the parser refuses.

import { TextDecoder } from 'node:util';
import { PP2_TYPE, UNIQUE_ID_MAX } from './constants.js';
import { ProxyProtocolError } from './errors.js';
import type { ProxySsl, ProxyTlv } from './types.js';

export interface TlvSpan {
  type: number;
  /** Offset of the type byte. */
  offset: number;
  /** Value bounds [valueStart, valueEnd). */
  valueStart: number;
  valueEnd: number;
}

/**
 * Walks TLVs laid out in buf[start, end). Only buf[0, avail) has arrived: the walk stops
 * at the first header not yet complete, but anything already provably wrong throws.
 * `base` is added to offsets in errors (for sub-TLVs inside a value).
 */
export function walkTlvs(
  buf: Uint8Array,
  start: number,
  end: number,
  avail: number,
  onHeader?: (type: number, length: number, offset: number) => void,
  base = 0,
): TlvSpan[] {
  const spans: TlvSpan[] = [];
  let off = start;
  while (off < end) {
    // Known as soon as the previous TLV's header is: no need to wait for the bytes.
    if (end - off < 3) {
      throw new ProxyProtocolError('TLV_TRAILING', `${end - off} byte(s) left, too few for a TLV`, base + off);
    }
    if (off + 3 > avail) break;
    const type = buf[off];
    const length = (buf[off + 1] << 8) | buf[off + 2];
    if (off + 3 + length > end) {
      throw new ProxyProtocolError(
        'TLV_OVERRUN',
        `TLV 0x${hex(type)} of ${length} bytes runs ${off + 3 + length - end} past its container`,
        base + off,
      );
    }
    onHeader?.(type, length, base + off);
    spans.push({ type, offset: off, valueStart: off + 3, valueEnd: off + 3 + length });
    off += 3 + length;
  }
  return spans;
}

/** Checks that depend only on a TLV's type and length, so they fire before the value arrives. */
export function checkTlvHeader(type: number, length: number, offset: number): void {
  if (type === PP2_TYPE.UNIQUE_ID && length > UNIQUE_ID_MAX) {
    throw new ProxyProtocolError('UNIQUE_ID_TOO_LONG', `UNIQUE_ID of ${length} bytes (max ${UNIQUE_ID_MAX})`, offset);
  }
  if (type === PP2_TYPE.CRC32C && length !== 4) {
    throw new ProxyProtocolError('BAD_TLV', `CRC32C value must be 4 bytes, got ${length}`, offset);
  }
  if (type === PP2_TYPE.SSL && length < 5) {
    throw new ProxyProtocolError('BAD_TLV', `SSL value must be at least 5 bytes, got ${length}`, offset);
  }
}

/** What the known TLVs say, gathered in wire order. */
export interface TlvInfo {
  tlvs: ProxyTlv[];
  authority?: string;
  uniqueId?: Buffer;
  ssl?: ProxySsl;
  alpn?: Buffer;
  /** Offset of the CRC32C value within the header, when present. */
  crcValueOffset?: number;
}

// Identity-bearing or checked TLVs: a second copy is ambiguous (which one did the
// proxy mean?), so we refuse it rather than pick one.
const SINGULAR: ReadonlySet<number> = new Set([
  PP2_TYPE.ALPN,
  PP2_TYPE.AUTHORITY,
  PP2_TYPE.CRC32C,
  PP2_TYPE.UNIQUE_ID,
  PP2_TYPE.SSL,
]);
const SSL_SINGULAR: ReadonlySet<number> = new Set([
  PP2_TYPE.SSL_VERSION,
  PP2_TYPE.SSL_CN,
  PP2_TYPE.SSL_CIPHER,
  PP2_TYPE.SSL_SIG_ALG,
  PP2_TYPE.SSL_KEY_ALG,
]);

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function decodeUtf8(v: Uint8Array, what: string, offset: number): string {
  try {
    return utf8.decode(v);
  } catch {
    throw new ProxyProtocolError('BAD_TLV', `${what} is not valid UTF-8`, offset);
  }
}

/** US-ASCII printable (§2.2.6 names for version, cipher, algorithms). */
function decodeAscii(v: Uint8Array, what: string, offset: number): string {
  for (const b of v) {
    if (b < 0x20 || b > 0x7e) throw new ProxyProtocolError('BAD_TLV', `${what} is not printable US-ASCII`, offset);
  }
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1');
}

/**
 * Records one TLV whose value is complete. `offset` is where its type byte sits in the
 * header (for errors and the CRC position). Throws on malformed or duplicated values.
 */
export function addTlv(info: TlvInfo, type: number, value: Buffer, offset: number): void {
  checkTlvHeader(type, value.length, offset);
  if (SINGULAR.has(type) && info.tlvs.some((t) => t.type === type)) {
    throw new ProxyProtocolError('BAD_TLV', `duplicate TLV 0x${hex(type)}`, offset);
  }
  info.tlvs.push({ type, value });
  switch (type) {
    case PP2_TYPE.ALPN: // §2.2.1: opaque bytes
      info.alpn = value;
      break;
    case PP2_TYPE.AUTHORITY: // §2.2.2
      info.authority = decodeUtf8(value, 'AUTHORITY', offset);
      break;
    case PP2_TYPE.CRC32C: // §2.2.3: verified by the caller once the whole header is in
      info.crcValueOffset = offset + 3;
      break;
    case PP2_TYPE.UNIQUE_ID: // §2.2.5
      info.uniqueId = value;
      break;
    case PP2_TYPE.SSL: // §2.2.6
      info.ssl = decodeSsl(value, offset + 3);
      break;
    default: // NOOP, NETNS, custom and unknown types: kept raw only
      break;
  }
}

/** §2.2.6: u8 client, u32 verify (BE), then sub-TLVs filling the value exactly. */
function decodeSsl(value: Buffer, valueOffset: number): ProxySsl {
  const ssl: ProxySsl = { client: value[0], verify: value.readUInt32BE(1), subTlvs: [] };
  for (const s of walkTlvs(value, 5, value.length, value.length, undefined, valueOffset)) {
    const v = Buffer.from(value.subarray(s.valueStart, s.valueEnd));
    const at = valueOffset + s.offset;
    if (SSL_SINGULAR.has(s.type) && ssl.subTlvs.some((t) => t.type === s.type)) {
      throw new ProxyProtocolError('BAD_TLV', `duplicate SSL sub-TLV 0x${hex(s.type)}`, at);
    }
    ssl.subTlvs.push({ type: s.type, value: v });
    switch (s.type) {
      case PP2_TYPE.SSL_VERSION:
        ssl.version = decodeAscii(v, 'SSL_VERSION', at);
        break;
      case PP2_TYPE.SSL_CN:
        ssl.cn = decodeUtf8(v, 'SSL_CN', at);
        break;
      case PP2_TYPE.SSL_CIPHER:
        ssl.cipher = decodeAscii(v, 'SSL_CIPHER', at);
        break;
      case PP2_TYPE.SSL_SIG_ALG:
        ssl.sigAlg = decodeAscii(v, 'SSL_SIG_ALG', at);
        break;
      case PP2_TYPE.SSL_KEY_ALG:
        ssl.keyAlg = decodeAscii(v, 'SSL_KEY_ALG', at);
        break;
      default:
        break;
    }
  }
  return ssl;
}
