// SMTP AUTH at Postern (RFC 4954) as the session runs it: the exchange (auth/exchange.ts)
// line by line, then the Authenticator (failure limits, then the verifier), its answer
// held back as long as it says, and what is logged: `auth_failed` for wrong credentials,
// `auth_flood` when the failure limits refuse, never a credential.

import type { Authenticator, AuthOutcome } from '../auth/index.js';
import { AuthExchange, authCommandRefusal, authKeyword, mailRefusal, type AuthStep } from '../auth/index.js';
import type { AuthConfig, AuthMode, HostPort } from '../config/types.js';
import type { Metrics } from '../observe/metrics.js';
import { observeAuth } from '../observe/record-metrics.js';
import type { AnomalyKind, AuthRecord, CloseReason } from '../observe/records.js';
import type { SmtpError } from '../smtp/errors.js';
import type { ClientIdentity } from './identity.js';
import type { ReplyQueue } from './reply-queue.js';

export interface AuthHost {
  readonly queue: ReplyQueue;
  readonly metrics: Metrics;
  readonly id: string;
  identity(): ClientIdentity;
  /** The client's TLS is up (implicit or STARTTLS). */
  tls(): boolean;
  helo(): string | null;
  esmtp(): boolean;
  inTransaction(): boolean;
  /** Holds later commands until `p` settles; `then` answers in the AUTH command's place. */
  hold<T>(p: Promise<T>, then: (value: T) => void): void;
  /** Logged in: the identity carries `auth`; a backend bound before learns it at the next MAIL. */
  authenticated(auth: AuthRecord, route: HostPort | null): void;
  anomaly(kind: AnomalyKind, detail: string): void;
  closeWith(reason: CloseReason, reply: string): void;
  refuse(err: SmtpError): void;
}

const delay = <T>(ms: number, v: T) => (ms > 0 ? new Promise<T>((r) => setTimeout(() => r(v), ms).unref()) : Promise.resolve(v));

export class SessionAuth {
  #exchange: AuthExchange | null = null;
  #attempts = 0;

  constructor(
    private readonly host: AuthHost,
    private readonly mode: AuthMode,
    private readonly cfg: AuthConfig | null,
    private readonly authenticator: Authenticator | null,
  ) {}

  #policy() {
    return { mechanisms: this.cfg?.mechanisms ?? [], tls: this.host.tls(), plaintext: this.cfg?.plaintext ?? false };
  }

  /** The mechanisms EHLO offers now (RFC 4954 §3), none when AUTH is not offered. */
  offered(): string[] {
    if (!this.authenticator) return [];
    const line = authKeyword(this.mode, this.#policy());
    return line ? line.split(' ').slice(1) : [];
  }

  /** MAIL before AUTH on a `required` listener: 530 5.7.0 (RFC 4954 §6). */
  checkMail(): void {
    const err = mailRefusal(this.mode, this.host.identity().auth !== null);
    if (err) throw err;
  }

  /** Waiting for the client's next line of the exchange. */
  get exchanging(): boolean {
    return this.#exchange?.waiting === true;
  }

  /** The AUTH command. */
  command(args: string): void {
    const h = this.host;
    const refusal = authCommandRefusal({
      mode: this.authenticator ? this.mode : 'off',
      ehlo: h.esmtp(),
      authenticated: h.identity().auth !== null,
      inTransaction: h.inTransaction(),
    });
    if (refusal) throw refusal;
    this.#exchange = new AuthExchange(this.#policy());
    this.#step(this.#exchange.start(args));
  }

  /** A line of the exchange (never logged: it carries credentials). */
  line(text: string, tooLong: boolean): void {
    const x = this.#exchange!;
    this.#step(tooLong ? x.tooLong() : x.next(text));
  }

  #step(step: AuthStep): void {
    const h = this.host;
    switch (step.kind) {
      case 'challenge':
        h.queue.reply(step.reply);
        return;
      case 'error':
        this.#end();
        observeAuth(h.metrics, 'aborted');
        h.refuse(step.error);
        return;
      case 'credentials': {
        this.#end();
        const id = h.identity();
        const attempt = ++this.#attempts;
        const outcome = this.authenticator!.authenticate(step.credentials, {
          client: id.client,
          local: id.local,
          tls: h.tls(),
          helo: h.helo(),
          clientHost: id.name ?? null,
          attempt,
          session: h.id,
        });
        h.hold(
          outcome.then((o) => delay(o.result === 'ok' ? 0 : o.delayMs, o)),
          (o) => this.#answer(o, step.credentials.user),
        );
      }
    }
  }

  #end(): void {
    this.#exchange = null;
  }

  #answer(o: AuthOutcome, asked: string): void {
    const h = this.host;
    observeAuth(h.metrics, o.result);
    if (o.result === 'ok') {
      h.authenticated({ user: o.user, mechanism: o.mechanism }, o.server ?? null);
      h.queue.reply(o.reply);
      return;
    }
    // The user name is the client's word, and may be someone else's: printable and short.
    const who = asked.replace(/[^\x21-\x7e]/g, '?').slice(0, 64);
    if (o.result === 'flood') h.anomaly('auth_flood', `${o.reason} (user ${who})`);
    else if (o.result === 'invalid') h.anomaly('auth_failed', `${o.reason} (user ${who})`);
    if (o.close) h.closeWith('error', o.reply.reply);
    else h.refuse(o.reply);
  }
}
