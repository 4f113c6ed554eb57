// Sliding-window event counts shared by every instance through Redis (auth failures per
// IP and per user): a sorted set of event times per key, trimmed and counted in one Lua
// script by Redis's clock. The same events are also counted here, so that while Redis is
// away the per-host counts carry on from this host's recent history.

import { randomBytes } from 'node:crypto';
import type { RedisLink } from './redis-link.js';
import { LUA_NOW, RedisScript } from './redis-script.js';
import { LocalWindowCounter, type WindowCounter } from './windows.js';

/** As LocalWindowCounter: enough to tell "over the limit", never a flood's exact size. */
const MAX_EVENTS_PER_KEY = 10_000;

// KEYS: the log. ARGV: window ms, unique member, cap. Returns the events in (now - window, now].
const HIT = `${LUA_NOW}
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n > tonumber(ARGV[3]) then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - tonumber(ARGV[3]) - 1)
  n = tonumber(ARGV[3])
end
if redis.call('PTTL', KEYS[1]) < window then redis.call('PEXPIRE', KEYS[1], window) end
return n`;

const COUNT = `${LUA_NOW}
return redis.call('ZCOUNT', KEYS[1], '(' .. (now - tonumber(ARGV[1])), '+inf')`;

export class RedisWindowCounter implements WindowCounter {
  readonly #local: LocalWindowCounter;
  readonly #hit: RedisScript;
  readonly #count: RedisScript;
  readonly #member = randomBytes(4).toString('hex');
  #seq = 0;

  constructor(
    private readonly link: RedisLink,
    local: LocalWindowCounter = new LocalWindowCounter(),
  ) {
    this.#local = local;
    this.#hit = new RedisScript(link, HIT, 1);
    this.#count = new RedisScript(link, COUNT, 1);
  }

  async hit(key: string, windowMs: number): Promise<number> {
    const here = await this.#local.hit(key, windowMs);
    if (!this.link.up) return here;
    try {
      return Number(await this.#hit.run([this.link.key('win', key)], [windowMs, `${this.#member}:${++this.#seq}`, MAX_EVENTS_PER_KEY]));
    } catch (err) {
      this.link.fault(err);
      return here;
    }
  }

  async count(key: string, windowMs: number): Promise<number> {
    if (!this.link.up) return this.#local.count(key, windowMs);
    try {
      return Number(await this.#count.run([this.link.key('win', key)], [windowMs]));
    } catch (err) {
      this.link.fault(err);
      return this.#local.count(key, windowMs);
    }
  }

  close(): void {
    this.#local.close();
  }
}
