import type { Reply } from '../smtp/reply.js';

export type BackendErrorCode =
  | 'BACKEND_CONNECT' //       TCP connect failed or timed out
  | 'BACKEND_TIMEOUT' //       no reply in time
  | 'BACKEND_CLOSED' //        the backend closed the connection
  | 'BACKEND_REPLY' //         a reply other than the one the handshake needs
  | 'BACKEND_PROTOCOL' //      not SMTP
  | 'BACKEND_NO_XCLIENT' //    identity xclient, but XCLIENT (with ADDR and PORT) not offered to us
  | 'BACKEND_NO_STARTTLS' //   backends.tls.starttls: required, but STARTTLS not offered
  | 'BACKEND_TLS'; //          the STARTTLS handshake or certificate verification failed

/** A failure talking to a backend server; `reply` when the server said something. */
export class BackendError extends Error {
  constructor(
    readonly code: BackendErrorCode,
    message: string,
    readonly reply?: Reply,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'BackendError';
  }

  /** Misconfiguration rather than a passing failure: the server must not be used until a check says otherwise. */
  get unusable(): boolean {
    return this.code === 'BACKEND_NO_XCLIENT' || this.code === 'BACKEND_NO_STARTTLS';
  }
}
