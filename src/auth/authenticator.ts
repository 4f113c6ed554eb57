// One call per AUTH attempt, after the exchange produced credentials: the failure limits
// first, then the verifier, then the failure count. The outcome carries the reply to
// send, how long to hold it, and what the session should log.
import type { AuthConfig, HostPort, SaslMechanismName } from '../config/types.js';
import type { SmtpError } from '../smtp/errors.js';
import type { WindowCounter } from '../state/windows.js';
import { DovecotVerifier } from './dovecot.js';
import type { Credentials } from './exchange.js';
import { FileVerifier } from './file.js';
import { HttpVerifier } from './http.js';
import { AuthFailureLimiter, type FailureLimits } from './limiter.js';
import { AUTH_ERRORS, REPLY_AUTH_OK } from './replies.js';
import { actsAsItself } from './sasl-plain.js';
import type { Verifier, VerifyRequest } from './verifier.js';

/** Everything about the attempt except the credentials. */
export type AttemptContext = Omit<VerifyRequest, 'user' | 'password' | 'authzid' | 'mechanism'>;

/**
 * `result` is the label of postern_auth_total{result} (observe/metrics.ts AuthResult); the
 * fifth label, `aborted`, is an exchange that ended in an AuthStep error.
 */
export type AuthOutcome =
  | {
      result: 'ok';
      /** The canonical user: for XCLIENT LOGIN= and the session record's auth.user. */
      user: string;
      mechanism: SaslMechanismName;
      /** Route the session to this backend (auth_http Auth-Server/Auth-Port), if set. */
      server?: HostPort;
      /** `235 2.7.0 ...` */
      reply: string;
    }
  | {
      /** invalid: the credentials were refused (log `auth_failed`); temporary: the verifier could not say. */
      result: 'invalid' | 'temporary';
      reply: SmtpError;
      /** Hold the reply this long (ms). */
      delayMs: number;
      /** Close the connection after the reply. */
      close: boolean;
      /** For the log (never the password). */
      reason: string;
    }
  | {
      /** Refused by the failure limits, the verifier was not asked (log `auth_flood`). */
      result: 'flood';
      reply: SmtpError;
      delayMs: number;
      close: false;
      limit: 'per_ip' | 'per_user';
      reason: string;
    };

export class Authenticator {
  readonly #limiter: AuthFailureLimiter;

  constructor(
    readonly verifier: Verifier,
    counter: WindowCounter,
    limits: FailureLimits,
    opts: { floodDelayMs?: number; keyPrefix?: string } = {},
  ) {
    const lopts: { prefix?: string; delayMs?: number } = {};
    if (opts.keyPrefix !== undefined) lopts.prefix = opts.keyPrefix;
    if (opts.floodDelayMs !== undefined) lopts.delayMs = opts.floodDelayMs;
    this.#limiter = new AuthFailureLimiter(counter, limits, lopts);
  }

  /** Never rejects. */
  async authenticate(credentials: Credentials, context: AttemptContext): Promise<AuthOutcome> {
    const ip = context.client.address;
    let flood = null;
    try {
      flood = await this.#limiter.check(ip, credentials.user);
    } catch {
      // Counters unreachable (Redis down): fail open, the verifier still decides.
    }
    if (flood !== null) {
      return {
        result: 'flood',
        reply: flood.reply,
        delayMs: flood.delayMs,
        close: false,
        limit: flood.limit,
        reason: `${flood.count} failures reached auth.failures.${flood.limit} (${flood.max})`,
      };
    }
    // Refused before any verifier is asked, so none can differ (auth_http would pass it on
    // and accept). Not a failure for the limits: no password was tried.
    if (!actsAsItself(credentials)) {
      return { result: 'invalid', reply: AUTH_ERRORS.invalid, delayMs: 0, close: false, reason: 'authzid differs from the user (RFC 4616 §2: nobody may act for another)' };
    }
    const r = await this.verifier.verify({ ...context, ...credentials });
    if (r.ok) {
      await this.#limiter.recordSuccess(ip, credentials.user).catch(() => undefined);
      const out: AuthOutcome = { result: 'ok', user: r.user, mechanism: credentials.mechanism, reply: REPLY_AUTH_OK };
      if (r.server !== undefined) out.server = r.server;
      return out;
    }
    if (r.failure === 'invalid') await this.#limiter.recordFailure(ip, credentials.user).catch(() => undefined);
    const reply = r.reply ?? (r.failure === 'invalid' ? AUTH_ERRORS.invalid : r.failure === 'mechanism' ? AUTH_ERRORS.mechanismTooWeak : AUTH_ERRORS.temporary);
    return {
      result: r.failure === 'temporary' ? 'temporary' : 'invalid',
      reply,
      delayMs: r.waitMs ?? 0,
      close: r.close === true,
      reason: r.reason,
    };
  }

  reload(): ReturnType<Verifier['reload']> {
    return this.verifier.reload();
  }

  close(): Promise<void> {
    return this.verifier.close();
  }
}

/** The verifier auth.verifier describes; the file verifier reads its file first (throws AuthFileError). */
export async function createVerifier(c: AuthConfig['verifier']): Promise<Verifier> {
  switch (c.type) {
    case 'dovecot':
      return new DovecotVerifier({ address: c.address, timeout: c.timeout });
    case 'http':
      return new HttpVerifier({ url: c.url, timeout: c.timeout, headers: c.headers });
    case 'file':
      return FileVerifier.open(c.path);
  }
}
