// Postern's TLS layer: terminating client TLS (implicit and STARTTLS) and STARTTLS to backends.
export { TlsTerminator, type TicketMode, type TerminatorOptions, type AcceptOptions, type TlsLogger } from './terminator.js';
export { BackendTls, BackendSessionCache, type BackendTlsConfig, type BackendServer } from './backend.js';
export { TlsHandshakeError, TlsConfigError, type TlsConfigErrorCode } from './errors.js';
export type { TlsInfo } from './info.js';
