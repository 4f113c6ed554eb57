// SMTP AUTH at Postern: the exchange (pure), the verifiers, the failure limits, and the
// Authenticator that ties a verifier to the limits. The session drives them.
export { AuthExchange, AUTH_LINE_MAX, authKeyword, authCommandRefusal, mailRefusal } from './exchange.js';
export type { AuthStep, Credentials, ExchangeFailure, ExchangePolicy } from './exchange.js';
export { Authenticator, createVerifier, type AttemptContext, type AuthOutcome } from './authenticator.js';
export { AuthFailureLimiter, FLOOD_DELAY_MS, type FailureLimits, type FloodDecision } from './limiter.js';
export { AUTH_ERRORS, REPLY_AUTH_OK } from './replies.js';
export { DovecotVerifier, type DovecotVerifierOptions } from './dovecot.js';
export { HttpVerifier, type HttpVerifierOptions } from './http.js';
export { FileVerifier, AuthFileError } from './file.js';
export type { FailureKind, ReloadResult, Verifier, VerifyRequest, VerifyResult } from './verifier.js';
