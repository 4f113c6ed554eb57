// What every verifier (Dovecot, auth_http, password file) is asked and answers.
import type { HostPort, SaslMechanismName } from '../config/types.js';
import type { SmtpError } from '../smtp/errors.js';

export interface VerifyRequest {
  user: string;
  password: string;
  /** PLAIN's authorization identity, '' when absent. */
  authzid: string;
  mechanism: SaslMechanismName;
  /** The real client (after PROXY/XCLIENT from a trusted peer), and Postern's side of it. */
  client: { address: string; port: number };
  local: { address: string; port: number };
  /** The client connection is TLS. */
  tls: boolean;
  /** The EHLO/HELO name, if one was given. */
  helo: string | null;
  /** The client's PTR name when known (nginx's Client-Host); null sends `[UNAVAILABLE]`. */
  clientHost?: string | null;
  /** 1 for the session's first AUTH, 2 for its second, ... */
  attempt: number;
  /** The session id, passed on where the protocol has room for it (Dovecot's `session=`). */
  session?: string;
}

export type FailureKind =
  /** Wrong user or password: 535 5.7.8, counts towards the failure limits. */
  | 'invalid'
  /** The verifier is unreachable, timed out or asked to come back later: 454 4.7.0. */
  | 'temporary'
  /** The verifier refuses this mechanism: 534 5.7.9. */
  | 'mechanism';

export type VerifyResult =
  | {
      ok: true;
      /** The canonical user name (what the verifier calls the account): for XCLIENT LOGIN and logs. */
      user: string;
      /** The backend chosen for this user (auth_http's Auth-Server/Auth-Port), if any. */
      server?: HostPort;
    }
  | {
      ok: false;
      failure: FailureKind;
      /** Why, for the log; never holds the password. */
      reason: string;
      /** A reply the verifier chose (auth_http's Auth-Status text and Auth-Error-Code). */
      reply?: SmtpError;
      /** How long to wait before replying, in ms (auth_http's Auth-Wait). */
      waitMs?: number;
      /** Close the connection after the reply (auth_http without Auth-Wait, as nginx does). */
      close?: boolean;
    };

export interface Verifier {
  readonly type: 'dovecot' | 'http' | 'file';
  /** Never rejects: every problem is a failed result (temporary when the verifier is at fault). */
  verify(req: VerifyRequest): Promise<VerifyResult>;
  /** SIGHUP: re-read what the verifier loads itself (the password file); others do nothing. */
  reload(): Promise<ReloadResult>;
  /** Closes connections and timers. Pending verifications end as temporary failures. */
  close(): Promise<void>;
}

export type ReloadResult = { ok: true; detail: string } | { ok: false; reason: string };
