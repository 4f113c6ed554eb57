// Postern's TLS layer: terminating client TLS (implicit and STARTTLS) and STARTTLS to backends.
//
// Server side (TlsTerminator), one instance for every listener:
//  - Certificates: one SecureContext per group of certificates (at most one per key type) serving a
//    name; the ClientHello is read first so the connection starts on the right context (client-hello.ts
//    says why SNICallback alone cannot do that with RSA + ECDSA pairs).
//  - Tickets: keys in a shared JSON file (ticket-key-file.ts documents the format and why it has no
//    lock), a new key published half a rotation ahead, retired keys kept for `lifetime`; a process
//    re-reads the file before its first ticket under a key and on a ticket under a key it lacks, so
//    resumption never waits for a timer (ticket-key-store.ts); overlap through Node's undocumented
//    ticket-key callback, probed with real handshakes at start-up (ticket-callback.ts), else one key at
//    a time (a rotation then costs each client one full handshake; logged).
//  - Session-ID cache (TLS 1.2 clients without tickets), one per host: held by the single process or
//    the cluster primary (host-session-cache.ts; workers ask it over IPC), with Redis behind it across
//    hosts, saved to `session_cache.file` across restarts; clients offering TLS 1.3 or tickets are
//    routed past it (session-cache.ts). sessionTimeout = ticket lifetime (or cache lifetime without tickets).
//  - OCSP: DER file per certificate, polled for changes, not stapled past nextUpdate or for a name
//    served by two key types (Node asks for the staple before OpenSSL picks the certificate).
// Backend side (BackendTls): verification, SNI (not for IP literals), sessions cached per server and
// verification profile.
export { TlsTerminator, type TicketMode, type TerminatorOptions, type AcceptOptions, type TlsLogger } from './terminator.js';
export { BackendTls, BackendSessionCache, type BackendTlsConfig, type BackendServer } from './backend.js';
export { TlsHandshakeError, TlsConfigError, AcmeChallengeAnswered, type TlsConfigErrorCode } from './errors.js';
export type { TlsInfo } from './info.js';
/** For `postern check`: loads every certificate/key pair the way the terminator does (TlsConfigError on failure). */
export { loadCertificates } from './certificates.js';
export { HostSessionCache, type HostSessionCacheStats } from './host-session-cache.js';
export { sessionCacheTtl, type SessionStore, type SharedSessions, type StoredSession } from './session-store.js';
export { readSessionFile, writeSessionFile, SessionFileError } from './session-cache-file.js';
