// The PROXY header Postern sends first on a backend connection (backends.identity
// proxy-v2 / proxy-v1), and the address-less one its health checks send.
//
// Size: at most 232 bytes in total. Exim 4.96 refuses a larger header as "unreasonably
// large" (smtp_in.c), Postfix reads at most 536 bytes in one peek (haproxy_srvr.c). Both
// ignore TLVs, so when a header would be too big, optional TLVs are dropped, never
// truncated (a cut SNI or id would be wrong, not just short), in this order:
//   1. AUTHORITY (the SNI name: up to 255 bytes, and the backend can do without it)
//   2. the SSL CIPHER sub-TLV
//   3. the SSL VERSION sub-TLV
//   4. UNIQUE_ID (the conn id that joins backend and Postern logs; short in practice)
// The SSL TLV itself (client flags, 8 bytes) always stays: it says whether the client
// used TLS. Addresses plus that TLV take at most 16 + 36 + 8 = 60 bytes.

import { isIPv4 } from 'node:net';
import { unmapIPv4 } from '../net/ip.js';
import { encodeProxyV1, encodeProxyV2, PP2_CLIENT, type ProxyEndpoint, type V2EncodeInput } from '../proxy/index.js';

/** Exim 4.96's limit for a whole v2 header; below Postfix's 536-byte peek. */
export const MAX_PROXY_HEADER = 232;

/** §2.2.5: UNIQUE_ID carries at most 128 bytes. */
const UNIQUE_ID_MAX = 128;

export interface ClientTls {
  /** e.g. `TLSv1.3` (Node's tlsSocket.getProtocol()). */
  version: string;
  /** e.g. `TLS_AES_256_GCM_SHA384` (Node's getCipher().standardName). */
  cipher: string;
  /** The server name the client asked for, or null. */
  sni: string | null;
}

export interface ProxyIdentity {
  /** The real client. */
  client: ProxyEndpoint;
  /** Where the client connected to (Postern's listener, or what an upstream balancer said). */
  local: ProxyEndpoint;
  /** The client's TLS with Postern, or null for plaintext. */
  tls: ClientTls | null;
  /** Postern's connection id, sent as UNIQUE_ID (§2.2.5). */
  connId: string;
}

/**
 * The header for one proxied session. v2: PROXY command, INET or INET6 (mixed families as
 * v4-mapped INET6, as HAProxy does), then SSL, UNIQUE_ID and AUTHORITY TLVs within
 * MAX_PROXY_HEADER bytes. v1: a TCP4 or TCP6 line (§2.1; mixed families as TCP6, v4-mapped).
 * Throws ProxyProtocolError for an endpoint that is not an IP address and port.
 */
export function buildProxyHeader(version: 1 | 2, id: ProxyIdentity): Buffer {
  const source = { address: unmapIPv4(id.client.address), port: id.client.port };
  const destination = { address: unmapIPv4(id.local.address), port: id.local.port };
  if (version === 1) return encodeV1(source, destination);

  const tls = id.tls;
  // §2.2.5: verify is 0 only when a client certificate was presented and verified;
  // Postern asks for none, so 1 (HAProxy's 0 here is misleading).
  const ssl: NonNullable<V2EncodeInput['ssl']> = { client: tls ? PP2_CLIENT.SSL : 0, verify: 1 };
  let version_: string | undefined = tls && printable(tls.version) ? tls.version : undefined;
  let cipher: string | undefined = tls && printable(tls.cipher) ? tls.cipher : undefined;
  let authority: string | undefined = tls?.sni && wellFormed(tls.sni) ? tls.sni : undefined;
  let uniqueId: Buffer | undefined = Buffer.from(id.connId, 'utf8');
  if (uniqueId.length === 0 || uniqueId.length > UNIQUE_ID_MAX) uniqueId = undefined;

  const v6 = !(isIPv4(source.address) && isIPv4(destination.address));
  const size = (): number =>
    16 +
    (v6 ? 36 : 12) +
    (3 + 5 + (version_ !== undefined ? 3 + version_.length : 0) + (cipher !== undefined ? 3 + cipher.length : 0)) +
    (uniqueId ? 3 + uniqueId.length : 0) +
    (authority !== undefined ? 3 + Buffer.byteLength(authority, 'utf8') : 0);
  // The documented drop order (see the top of this file).
  if (size() > MAX_PROXY_HEADER) authority = undefined;
  if (size() > MAX_PROXY_HEADER) cipher = undefined;
  if (size() > MAX_PROXY_HEADER) version_ = undefined;
  if (size() > MAX_PROXY_HEADER) uniqueId = undefined;

  if (version_ !== undefined) ssl.version = version_;
  if (cipher !== undefined) ssl.cipher = cipher;
  const input: V2EncodeInput = { command: 'proxy', source, destination, ssl, maxLength: MAX_PROXY_HEADER };
  if (uniqueId) input.uniqueId = uniqueId;
  if (authority !== undefined) input.authority = authority;
  return encodeProxyV2(input);
}

/**
 * A header that vouches for nobody: v2 LOCAL (§2.2, "the receiver must use the real
 * connection endpoints"; what HAProxy sends for health checks), v1 `PROXY UNKNOWN\r\n`
 * (§2.1). Postfix refuses v1 UNKNOWN on purpose (haproxy_srvr.c), so v1 health checks
 * use healthHeader(1, ...) with the connection's own addresses instead.
 */
export function proxyLocalHeader(version: 1 | 2): Buffer {
  return version === 2 ? encodeProxyV2({ command: 'local' }) : encodeProxyV1({ family: 'unknown' });
}

/**
 * What a health check sends first: v2 LOCAL; v1 a TCP4/TCP6 line naming the check's own
 * connection (Postern -> backend), which Postfix and Exim both accept and which tells the
 * backend nothing but the truth.
 */
export function healthHeader(version: 1 | 2, own: { local: ProxyEndpoint; remote: ProxyEndpoint }): Buffer {
  if (version === 2) return proxyLocalHeader(2);
  return encodeV1(
    { address: unmapIPv4(own.local.address), port: own.local.port },
    { address: unmapIPv4(own.remote.address), port: own.remote.port },
  );
}

function encodeV1(source: ProxyEndpoint, destination: ProxyEndpoint): Buffer {
  if (isIPv4(source.address) && isIPv4(destination.address)) {
    return encodeProxyV1({ family: 'tcp4', source, destination });
  }
  // §2.1 has one family per line: an IPv4 side is written v4-mapped in a TCP6 line.
  return encodeProxyV1({
    family: 'tcp6',
    source: { address: mapped(source.address), port: source.port },
    destination: { address: mapped(destination.address), port: destination.port },
  });
}

function mapped(address: string): string {
  return isIPv4(address) ? `::ffff:${address}` : address;
}

/** §2.2.6: version and cipher are US-ASCII strings; anything else is left out, not sent broken. */
function printable(s: string): boolean {
  return s.length > 0 && /^[\x20-\x7e]+$/.test(s);
}

/** AUTHORITY is UTF-8 (§2.2.2); a lone surrogate would make the encoder throw. */
function wellFormed(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}
