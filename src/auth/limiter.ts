// Brute-force defence: failed logins counted per client IP and per user name in sliding
// windows. Past either limit, AUTH is refused without asking the verifier (the session
// logs `auth_flood`); each verifier "invalid" is one failure (the session logs
// `auth_failed`). The counts live behind WindowCounter: in this process, in the cluster
// primary, or in Redis, so every worker and host sees the same totals.
//
// A per-user limit alone would let anyone lock a user out by spraying wrong passwords for
// the name from a handful of addresses. So an address where the user logged in
// successfully (within `known_address`, default 14 days) is "known" for that user: its
// failures for that user count towards per_ip only, and per_user never refuses it. The
// spray is refused from every other address, and the user keeps logging in from where
// they usually do. Only a right password makes an address known, so a guesser cannot;
// each (user, address) is one small window key (about 30 events at most, see below).
import type { RateConfig } from '../config/types.js';
import { clientKey } from '../net/ip.js';
import type { SmtpError } from '../smtp/errors.js';
import type { WindowCounter } from '../state/windows.js';
import { AUTH_ERRORS } from './replies.js';

export interface FailureLimits {
  per_ip: RateConfig | null;
  per_user: RateConfig | null;
  /** How long (ms) a login keeps its address exempt from the user's per_user limit; 0: never. */
  known_address?: number;
}

export interface FloodDecision {
  limit: 'per_ip' | 'per_user';
  /** Failures in the window, and the limit they reached. */
  count: number;
  max: number;
  reply: SmtpError;
  /** Hold the reply this long: a guesser's next try costs it time, not us. */
  delayMs: number;
}

/** auth.failures.known_address's default: 14 days, renewed by every login (durations stop at 24 days). */
export const KNOWN_ADDRESS_MS = 14 * 24 * 3600 * 1000;
/** A known address's key holds at most about this many events (see recordSuccess). */
const KNOWN_STEPS = 30;

/** Delay before a flood refusal (nginx's documentation suggests Auth-Wait: 3 for failures). */
export const FLOOD_DELAY_MS = 3000;

export class AuthFailureLimiter {
  constructor(
    private readonly counter: WindowCounter,
    private readonly limits: FailureLimits,
    private readonly opts: { prefix?: string; delayMs?: number } = {},
  ) {}

  /** Whether this attempt is refused before the verifier is asked; null: go ahead. */
  async check(clientAddress: string, user: string): Promise<FloodDecision | null> {
    const { per_ip, per_user } = this.limits;
    const [ipCount, userCount, known] = await Promise.all([
      per_ip === null ? 0 : this.counter.count(this.#ipKey(clientAddress), per_ip.window),
      per_user === null ? 0 : this.counter.count(this.#userKey(user), per_user.window),
      this.#known(clientAddress, user),
    ]);
    if (per_ip !== null && ipCount >= per_ip.count) return this.#flood('per_ip', ipCount, per_ip.count);
    if (per_user !== null && !known && userCount >= per_user.count) return this.#flood('per_user', userCount, per_user.count);
    return null;
  }

  /** One failed login (the verifier said invalid). */
  async recordFailure(clientAddress: string, user: string): Promise<void> {
    const { per_ip, per_user } = this.limits;
    // The user mistyping where they usually log in is no attack on the user.
    const counted = per_user !== null && !(await this.#known(clientAddress, user));
    await Promise.all([
      per_ip === null ? 0 : this.counter.hit(this.#ipKey(clientAddress), per_ip.window),
      counted ? this.counter.hit(this.#userKey(user), per_user.window) : 0,
    ]);
  }

  /** A successful login: the address becomes (or stays) known for this user. */
  async recordSuccess(clientAddress: string, user: string): Promise<void> {
    const span = this.#knownSpan();
    if (span === 0) return;
    const key = this.#knownKey(clientAddress, user);
    // One event per 1/30 of the span is enough to say "known": a user logging in every
    // minute leaves about 30 events in the key, not one per login.
    if ((await this.counter.count(key, Math.max(1, Math.floor(span / KNOWN_STEPS)))) > 0) return;
    await this.counter.hit(key, span);
  }

  async #known(clientAddress: string, user: string): Promise<boolean> {
    const span = this.#knownSpan();
    return span > 0 && (await this.counter.count(this.#knownKey(clientAddress, user), span)) > 0;
  }

  /** 0 when there is nothing to exempt from. */
  #knownSpan(): number {
    return this.limits.per_user === null ? 0 : (this.limits.known_address ?? KNOWN_ADDRESS_MS);
  }

  #flood(limit: 'per_ip' | 'per_user', count: number, max: number): FloodDecision {
    return { limit, count, max, reply: AUTH_ERRORS.flood, delayMs: this.opts.delayMs ?? FLOOD_DELAY_MS };
  }

  #ipKey(address: string): string {
    return `${this.opts.prefix ?? 'auth-fail'}:ip:${clientKey(address)}`;
  }

  #userKey(user: string): string {
    return `${this.opts.prefix ?? 'auth-fail'}:user:${user.toLowerCase()}`;
  }

  #knownKey(address: string, user: string): string {
    return `${this.opts.prefix ?? 'auth-fail'}:known:${clientKey(address)}:${user.toLowerCase()}`;
  }
}
