// Public data shapes of the codec.

/** IPv4 dotted quad, or IPv6 in canonical (RFC 5952) lowercase text without brackets; UNIX: path, port 0. */
export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyTlv {
  type: number;
  value: Buffer;
}

export interface ProxySsl {
  /** PP2_CLIENT_* bit field. */
  client: number;
  /** 0 = certificate presented and verified (per spec; HAProxy also sends 0 without a certificate, so check `client`). */
  verify: number;
  version?: string;
  cipher?: string;
  cn?: string;
  sigAlg?: string;
  keyAlg?: string;
  /** Every sub-TLV in wire order, known ones included. */
  subTlvs: ProxyTlv[];
}

export interface ProxyHeader {
  version: 1 | 2;
  /** v1 is always 'proxy' (UNKNOWN shows as family 'unknown'). */
  command: 'local' | 'proxy';
  /** As on the wire, also for LOCAL; callers treat 'unknown'/'unspec' (and LOCAL) as "keep the socket's addresses". */
  family: 'tcp4' | 'tcp6' | 'unix' | 'unknown' | 'unspec';
  transport: 'stream' | 'dgram' | 'unspec';
  /** null for LOCAL, UNKNOWN and UNSPEC. */
  source: ProxyEndpoint | null;
  destination: ProxyEndpoint | null;
  /** Every v2 TLV in wire order (CRC32C, NOOP and unknown types included); [] for v1. */
  tlvs: ProxyTlv[];
  authority?: string;
  uniqueId?: Buffer;
  ssl?: ProxySsl;
  alpn?: Buffer;
  /** true when a CRC32C TLV was present and matched. */
  crc32cChecked?: boolean;
}

export type ParseResult = { kind: 'incomplete' } | { kind: 'header'; header: ProxyHeader; length: number };

export interface ParseOptions {
  /** Largest accepted v2 `len` (bytes after the 16-byte fixed part). Default 4096. */
  maxV2Length?: number;
}

export interface V1EncodeInput {
  family: 'tcp4' | 'tcp6' | 'unknown';
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
}

export interface V2SslInput {
  client: number;
  verify: number;
  version?: string;
  cipher?: string;
  cn?: string;
}

export interface V2EncodeInput {
  command: 'local' | 'proxy';
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  authority?: string;
  uniqueId?: Buffer;
  alpn?: Buffer;
  ssl?: V2SslInput;
  tlvs?: ProxyTlv[];
  crc32c?: boolean;
  maxLength?: number;
}
