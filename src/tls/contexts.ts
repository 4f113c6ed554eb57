// One SecureContext per certificate group, all with the same protocol, session and ticket settings,
// so a session or ticket made under one context resumes under any other (SNI can switch contexts).
import { constants } from 'node:crypto';
import tls from 'node:tls';
import type { LoadedCertificate } from './certificates.js';
import { TlsConfigError } from './errors.js';

/** Fixed, not per process: tickets carry it, and a ticket must resume on every instance and after restarts. */
export const SESSION_ID_CONTEXT = 'postern-smtp-1';

export interface ContextSettings {
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** Seconds; also the lifetime hint sent with tickets. OpenSSL's default (7200) applies if unset, whatever Node's docs say. */
  sessionTimeout: number;
  tickets: boolean;
}

/**
 * Ciphers, groups and signature algorithms are Node's defaults (tls.DEFAULT_CIPHERS: ECDHE with
 * AES-GCM/ChaCha20 first, no RC4/3DES/export; TLS 1.3 suites all AEAD). Client-initiated
 * renegotiation is refused: it only serves as a CPU sink on a mail port.
 */
export function buildContext(certs: readonly LoadedCertificate[], s: ContextSettings): tls.SecureContext {
  let secureOptions = constants.SSL_OP_NO_RENEGOTIATION;
  if (!s.tickets) secureOptions |= constants.SSL_OP_NO_TICKET;
  try {
    return tls.createSecureContext({
      // Several key/certificate pairs of different key types: OpenSSL picks one per handshake
      // from the client's signature algorithms.
      key: certs.map((c) => c.keyPem),
      cert: certs.map((c) => c.certPem),
      minVersion: s.minVersion,
      sessionTimeout: s.sessionTimeout,
      sessionIdContext: SESSION_ID_CONTEXT,
      secureOptions,
    });
  } catch (err) {
    const files = certs.map((c) => c.config.cert).join(', ');
    throw new TlsConfigError('TLS_CERTIFICATE', `cannot build a TLS context from ${files}: ${(err as Error).message}`, certs[0]?.config.cert ?? null, {
      cause: err,
    });
  }
}
