// Brute-force defence: failed logins counted per client IP and per user name in sliding
// windows. Past either limit, AUTH is refused without asking the verifier (the session
// logs `auth_flood`); each verifier "invalid" is one failure (the session logs
// `auth_failed`). The counts live behind WindowCounter: in this process, in the cluster
// primary, or in Redis, so every worker and host sees the same totals.
import { parseIp } from '../config/ip.js';
import type { RateConfig } from '../config/types.js';
import type { SmtpError } from '../smtp/errors.js';
import type { WindowCounter } from '../state/windows.js';
import { AUTH_ERRORS } from './replies.js';

export interface FailureLimits {
  per_ip: RateConfig | null;
  per_user: RateConfig | null;
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
    const [ipCount, userCount] = await Promise.all([
      per_ip === null ? 0 : this.counter.count(this.#ipKey(clientAddress), per_ip.window),
      per_user === null ? 0 : this.counter.count(this.#userKey(user), per_user.window),
    ]);
    if (per_ip !== null && ipCount >= per_ip.count) return this.#flood('per_ip', ipCount, per_ip.count);
    if (per_user !== null && userCount >= per_user.count) return this.#flood('per_user', userCount, per_user.count);
    return null;
  }

  /** One failed login (the verifier said invalid). */
  async recordFailure(clientAddress: string, user: string): Promise<void> {
    const { per_ip, per_user } = this.limits;
    await Promise.all([
      per_ip === null ? 0 : this.counter.hit(this.#ipKey(clientAddress), per_ip.window),
      per_user === null ? 0 : this.counter.hit(this.#userKey(user), per_user.window),
    ]);
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
}

/**
 * The client's counting key: an IPv4 address, or the /64 of an IPv6 one (one subscriber
 * line usually holds a whole /64, so counting single addresses would let one guesser
 * rotate through 2^64 of them).
 */
export function clientKey(address: string): string {
  const ip = parseIp(address);
  if (ip === null) return address;
  if (ip.family === 4) {
    const v = ip.words[0];
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const [a, b] = ip.words;
  const hex = (n: number): string => `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  return `${hex(a)}:${hex(b)}::/64`;
}
