// The SMTP AUTH exchange (RFC 4954 §4) as a pure state machine: the session hands it the
// AUTH command's arguments, then each line the client sends, and it answers with what to
// send next (a 334 challenge), the finished credentials, or the error reply that ends the
// exchange. No I/O, no sockets, no verifier: those are the session's and Authenticator's.
import { C334ContinueAuth } from '../smtp/codes.js';
import type { SaslMechanismName } from '../config/types.js';
import type { SmtpError } from '../smtp/errors.js';
import { formatReply } from '../smtp/reply.js';
import { decodeBase64Strict } from './base64.js';
import { AUTH_ERRORS } from './replies.js';
import { LOGIN_PASSWORD_CHALLENGE, LOGIN_USER_CHALLENGE, decodeLoginField } from './sasl-login.js';
import { SaslSyntaxError, decodePlain } from './sasl-plain.js';

/**
 * RFC 4954 §4: servers must take responses as long as their mechanisms produce; 12288
 * octets is "sufficient for deployed mechanisms" (Postfix's smtpd_sasl_response_limit).
 * The session should read lines of the exchange with at least this limit.
 */
export const AUTH_LINE_MAX = 12288;

export interface Credentials {
  mechanism: SaslMechanismName;
  /** PLAIN's authorization identity; '' when absent (always '' for LOGIN). */
  authzid: string;
  user: string;
  password: string;
}

/** Why an exchange ended without credentials (for logs; never carries client data). */
export type ExchangeFailure =
  | 'syntax'
  | 'unknown_mechanism'
  | 'encryption_required'
  | 'bad_base64'
  | 'bad_message'
  | 'cancelled'
  | 'line_too_long';

export type AuthStep =
  /** Send `reply` (a 334 line) and pass the client's next line to `next()`. */
  | { kind: 'challenge'; reply: string }
  /** The client is done: verify these (Authenticator.authenticate). */
  | { kind: 'credentials'; credentials: Credentials }
  /** Send `error.reply`; the exchange is over and the session is back in command mode. */
  | { kind: 'error'; error: SmtpError; failure: ExchangeFailure };

export interface ExchangePolicy {
  /** Mechanisms offered (auth.mechanisms). */
  mechanisms: readonly SaslMechanismName[];
  /** The client connection is TLS (implicit or after STARTTLS). */
  tls: boolean;
  /** auth.plaintext: PLAIN and LOGIN allowed without TLS. */
  plaintext: boolean;
}

type State =
  | { at: 'start' }
  | { at: 'plain' }
  | { at: 'login-user' }
  | { at: 'login-password'; user: string }
  | { at: 'over' };

/** One AUTH command's exchange. Make a new one for each AUTH command. */
export class AuthExchange {
  #state: State = { at: 'start' };

  constructor(private readonly policy: ExchangePolicy) {}

  /** Waiting for a client line (after a challenge). */
  get waiting(): boolean {
    return this.#state.at !== 'start' && this.#state.at !== 'over';
  }

  /** `args`: everything after `AUTH ` (mechanism and optional initial response). */
  start(args: string): AuthStep {
    if (this.#state.at !== 'start') throw new Error('AuthExchange.start called twice');
    const [mechText, initial, ...extra] = args.trim().split(/ +/);
    if (mechText === undefined || mechText === '' || extra.length > 0) return this.#fail('syntax');
    const mech = asciiUpper(mechText);
    const offered = this.policy.mechanisms.find((m) => m === mech);
    if (offered === undefined) return this.#fail('unknown_mechanism');
    // RFC 4954 §4 and RFC 4616 §4: plaintext mechanisms only under TLS, unless configured.
    if (!this.policy.tls && !this.policy.plaintext) return this.#fail('encryption_required');
    if (offered === 'PLAIN') {
      this.#state = { at: 'plain' };
      // No initial response: an empty challenge, the response comes on the next line.
      return initial === undefined ? this.#challenge('') : this.#plain(initial);
    }
    this.#state = { at: 'login-user' };
    return initial === undefined ? this.#challenge(LOGIN_USER_CHALLENGE) : this.#loginUser(initial);
  }

  /** The client's next line (without CRLF), after a challenge. */
  next(line: string | Buffer): AuthStep {
    const text = typeof line === 'string' ? line : line.toString('latin1');
    if (!this.waiting) throw new Error('AuthExchange.next called while no challenge is outstanding');
    if (Buffer.byteLength(text, 'latin1') > AUTH_LINE_MAX) return this.#fail('line_too_long');
    // §4: a line of a single "*" cancels the exchange.
    if (text === '*') return this.#fail('cancelled');
    switch (this.#state.at) {
      case 'plain':
        return this.#plain(text);
      case 'login-user':
        return this.#loginUser(text);
      case 'login-password':
        return this.#loginPassword(this.#state.user, text);
      default:
        throw new Error('unreachable');
    }
  }

  /** The session's line reader dropped an over-long line of this exchange. */
  tooLong(): AuthStep {
    return this.#fail('line_too_long');
  }

  #plain(b64: string): AuthStep {
    const bytes = this.#decode(b64);
    if (bytes === null) return this.#fail('bad_base64');
    try {
      const m = decodePlain(bytes);
      return this.#done({ mechanism: 'PLAIN', authzid: m.authzid, user: m.user, password: m.password });
    } catch (e) {
      if (e instanceof SaslSyntaxError) return this.#fail('bad_message');
      throw e;
    }
  }

  #loginUser(b64: string): AuthStep {
    const bytes = this.#decode(b64);
    if (bytes === null) return this.#fail('bad_base64');
    try {
      this.#state = { at: 'login-password', user: decodeLoginField(bytes, 'user name') };
      return this.#challenge(LOGIN_PASSWORD_CHALLENGE);
    } catch (e) {
      if (e instanceof SaslSyntaxError) return this.#fail('bad_message');
      throw e;
    }
  }

  #loginPassword(user: string, b64: string): AuthStep {
    const bytes = this.#decode(b64);
    if (bytes === null) return this.#fail('bad_base64');
    try {
      return this.#done({ mechanism: 'LOGIN', authzid: '', user, password: decodeLoginField(bytes, 'password') });
    } catch (e) {
      if (e instanceof SaslSyntaxError) return this.#fail('bad_message');
      throw e;
    }
  }

  // RFC 4954 §4: "=" is an initial response of zero length (distinct from none at all).
  #decode(b64: string): Buffer | null {
    if (b64 === '=') return Buffer.alloc(0);
    return decodeBase64Strict(b64);
  }

  #challenge(b64: string): AuthStep {
    return { kind: 'challenge', reply: formatReply(C334ContinueAuth, b64) };
  }

  #done(credentials: Credentials): AuthStep {
    this.#state = { at: 'over' };
    return { kind: 'credentials', credentials };
  }

  #fail(failure: ExchangeFailure): AuthStep {
    this.#state = { at: 'over' };
    return { kind: 'error', error: FAILURE_REPLY[failure], failure };
  }
}

const FAILURE_REPLY: Record<ExchangeFailure, SmtpError> = {
  syntax: AUTH_ERRORS.syntax,
  unknown_mechanism: AUTH_ERRORS.unknownMechanism,
  encryption_required: AUTH_ERRORS.encryptionRequired,
  bad_base64: AUTH_ERRORS.badBase64,
  bad_message: AUTH_ERRORS.badMessage,
  cancelled: AUTH_ERRORS.cancelled,
  line_too_long: AUTH_ERRORS.lineTooLong,
};

function asciiUpper(s: string): string {
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

/**
 * The EHLO keyword line for this connection (RFC 4954 §3: `AUTH` and the mechanisms,
 * space-separated), or null when AUTH is not offered: listener auth off, or no TLS
 * while plaintext is false (then AUTH gets 538, but is not advertised).
 */
export function authKeyword(mode: 'off' | 'optional' | 'required', policy: ExchangePolicy): string | null {
  if (mode === 'off' || policy.mechanisms.length === 0) return null;
  if (!policy.tls && !policy.plaintext) return null;
  return `AUTH ${policy.mechanisms.join(' ')}`;
}

/** The refusal for an AUTH command in this session state, or null when it may start. */
export function authCommandRefusal(s: {
  mode: 'off' | 'optional' | 'required';
  /** EHLO (not HELO) was accepted. */
  ehlo: boolean;
  authenticated: boolean;
  /** Between MAIL and the end of the transaction. */
  inTransaction: boolean;
}): SmtpError | null {
  if (s.mode === 'off') return AUTH_ERRORS.notAvailable;
  if (!s.ehlo) return AUTH_ERRORS.helloFirst;
  if (s.authenticated) return AUTH_ERRORS.alreadyAuthenticated;
  if (s.inTransaction) return AUTH_ERRORS.inTransaction;
  return null;
}

/** `530 5.7.0` for MAIL on a `required` listener before AUTH succeeded, else null. */
export function mailRefusal(mode: 'off' | 'optional' | 'required', authenticated: boolean): SmtpError | null {
  return mode === 'required' && !authenticated ? AUTH_ERRORS.required : null;
}
