// Errors raised by the TLS layer; each carries a stable `code` for callers and logs.

/** A TLS handshake that did not complete: OpenSSL's reason (`wrong version number`, `no shared cipher`),
 * a verification code on the backend side (`ERR_TLS_CERT_ALTNAME_INVALID`), `timeout`, or `connection closed`. */
export class TlsHandshakeError extends Error {
  override name = 'TlsHandshakeError';
  readonly code = 'TLS_HANDSHAKE' as const;
  constructor(
    readonly reason: string,
    /** Whose handshake failed: our server side (client connection) or our client side (backend). */
    readonly side: 'server' | 'client',
    /** True when the peer's certificate failed verification (backend side only). */
    readonly verify = false,
    options?: { cause?: unknown },
  ) {
    super(`TLS handshake failed (${side}): ${reason}`, options);
  }
}

export type TlsConfigErrorCode =
  | 'TLS_CERTIFICATE' //   a certificate or key that does not load, parse or match
  | 'TLS_TICKET_KEYS' //   the ticket key file is unreadable, malformed or too open
  | 'TLS_CA'; //           the backend CA file does not load

/** A configuration problem found while loading TLS material; `path` is the file concerned. */
export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
  constructor(
    readonly code: TlsConfigErrorCode,
    message: string,
    readonly path: string | null = null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Not a failure: the connection was an ACME validator's tls-alpn-01 probe (RFC 8737 3), answered
 * with the challenge certificate and closed. It never becomes an SMTP session.
 */
export class AcmeChallengeAnswered extends TlsHandshakeError {
  override name = 'AcmeChallengeAnswered';
  constructor(readonly domain: string) {
    super('acme-tls/1 challenge answered', 'server');
  }
}
