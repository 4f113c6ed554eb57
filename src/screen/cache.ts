// Screening's memory: clients that passed (postscreen's temporary allowlist, per test
// group) and the auto-ban. Kept in the window counts the host already shares (state/
// windows.ts): in this process, at the cluster's primary for its workers, and in Redis with
// `state.redis`, so a client that passed on one worker or host is known on the others.

import type { RateConfig } from '../config/types.js';
import type { WindowCounter } from '../state/windows.js';

/** What a pass is remembered for: the tests before the greeting, or those after it. */
export type PassKind = 'greet' | 'deep';

export class ScreenCache {
  constructor(private readonly windows: WindowCounter) {}

  /** Whether `client` passed `kind` within the last `ttlMs` (0: the cache is off). */
  async passed(client: string, kind: PassKind, ttlMs: number): Promise<boolean> {
    if (ttlMs <= 0) return false;
    return (await this.windows.count(key('pass', kind, client), ttlMs)) > 0;
  }

  /** `client` passed `kind` now. */
  async remember(client: string, kind: PassKind, ttlMs: number): Promise<void> {
    if (ttlMs <= 0) return;
    await this.windows.hit(key('pass', kind, client), ttlMs);
  }

  /** Whether `client` is banned now (a ban lasts `banMs` from the failure that caused it). */
  async banned(client: string, banMs: number): Promise<boolean> {
    return (await this.windows.count(key('ban', 'ip', client), banMs)) > 0;
  }

  /** `client` failed screening: true when that makes `failures.count` within the window, and it is banned from now. */
  async failed(client: string, failures: RateConfig, banMs: number): Promise<boolean> {
    const n = await this.windows.hit(key('fail', 'ip', client), failures.window);
    if (n < failures.count) return false;
    await this.windows.hit(key('ban', 'ip', client), banMs);
    return true;
  }
}

function key(what: string, kind: string, client: string): string {
  return `screen:${what}:${kind}:${client.toLowerCase()}`;
}
