// What the session record and the Received header say about a finished handshake.
import type tls from 'node:tls';

export interface TlsInfo {
  /** `TLSv1.2`, `TLSv1.3`. */
  version: string;
  /** OpenSSL's cipher name, e.g. `TLS_AES_256_GCM_SHA384`, `ECDHE-ECDSA-AES128-GCM-SHA256`. */
  cipher: string;
  /** The session was resumed (ticket or session cache): no certificate, no full key exchange. */
  resumed: boolean;
  /** The server name the client asked for (SNI), or null. */
  sni: string | null;
}

export function tlsInfo(socket: tls.TLSSocket, sni: string | null): TlsInfo {
  return {
    version: socket.getProtocol() ?? 'unknown',
    cipher: socket.getCipher()?.name ?? 'unknown',
    resumed: socket.isSessionReused(),
    sni,
  };
}

/** Node reports a missing SNI as `false` (server side) or undefined; normalise to null. */
export function serverNameOf(socket: tls.TLSSocket): string | null {
  const s: unknown = socket.servername;
  return typeof s === 'string' && s !== '' ? s.toLowerCase() : null;
}
