// Per-client connection counts and connection rates shared by every instance through Redis.
//
// Connections: one hash per client key, one field per instance (`generation`, see below),
// counting the connections that instance holds. An instance that dies cannot release
// them, so each instance also keeps a heartbeat (its expiry time in a shared hash); an
// admission counts only the fields of instances whose heartbeat is current, and deletes
// the others. A killed instance's connections stop counting within `ttlMs`.
// Rates: a sliding log per client key (a sorted set of admission times, at most `rate`
// entries), the same rule as the per-host Admission. Both checks and the update are one
// Lua script, so two instances admitting the same client at once cannot both take the
// last place. Times are Redis's own (TIME): instances' clocks need not agree.
//
// Each reconnection starts a new generation: the old one is dropped from the heartbeat
// hash (its fields stop counting at once) and this host's connections, as the caller
// holds them, are written under the new one. Whatever Redis missed while it was away, or
// applied without our hearing the answer, is so put right.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { RedisLink } from './redis-link.js';
import { LUA_NOW, RedisScript } from './redis-script.js';

export type IpVerdict = 'ok' | 'connections' | 'rate';

export interface IpLimits {
  connections: number;
  rate: number;
  windowMs: number;
}

export interface RedisIpCountsOptions {
  /** This host's connections now, by client key: written back after each reconnection. */
  held: () => ReadonlyMap<string, number>;
  heartbeatMs?: number;
  /** A heartbeat older than this means the instance is dead. */
  ttlMs?: number;
  /** A client's connection hash not touched for this long is dropped (bounds what a vanished client leaves). */
  idleKeyTtlMs?: number;
}

// KEYS: conn hash, heartbeat hash, rate log. ARGV: generation, connections cap, rate count,
// rate window ms, unique member, conn hash TTL ms. Returns 0 admitted, 1 connections, 2 rate.
const ADMIT = `${LUA_NOW}
local me = ARGV[1]
local held = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #held, 2 do
  local who = held[i]
  local n = tonumber(held[i + 1]) or 0
  if who == me then
    total = total + n
  else
    local alive = tonumber(redis.call('HGET', KEYS[2], who) or '0')
    if alive > now then total = total + n else redis.call('HDEL', KEYS[1], who) end
  end
end
if total >= tonumber(ARGV[2]) then return 1 end
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 2 end
redis.call('ZADD', KEYS[3], now, ARGV[5])
redis.call('PEXPIRE', KEYS[3], window)
redis.call('HINCRBY', KEYS[1], me, 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 0`;

// KEYS: conn hash. ARGV: generation, delta (+1 force, -1 release), conn hash TTL ms.
const ADD = `local n = redis.call('HINCRBY', KEYS[1], ARGV[1], tonumber(ARGV[2]))
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return n`;

// KEYS: heartbeat hash. ARGV: generation, TTL ms, previous generation or ''. Also forgets
// instances whose heartbeat has run out.
const HEARTBEAT = `${LUA_NOW}
if ARGV[3] ~= '' then redis.call('HDEL', KEYS[1], ARGV[3]) end
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if (tonumber(all[i + 1]) or 0) <= now then redis.call('HDEL', KEYS[1], all[i]) end
end
return now`;

export class RedisIpCounts {
  readonly #admit: RedisScript;
  readonly #add: RedisScript;
  readonly #heartbeat: RedisScript;
  readonly #heartbeatMs: number;
  readonly #ttlMs: number;
  readonly #idleKeyTtlMs: number;
  readonly #base = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  #generation = 0;
  #seq = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #onUp = () => this.#resync();

  constructor(
    private readonly link: RedisLink,
    private readonly opts: RedisIpCountsOptions,
  ) {
    this.#heartbeatMs = opts.heartbeatMs ?? 5000;
    this.#ttlMs = opts.ttlMs ?? 15_000;
    this.#idleKeyTtlMs = opts.idleKeyTtlMs ?? 24 * 3600_000;
    this.#admit = new RedisScript(link, ADMIT, 3);
    this.#add = new RedisScript(link, ADD, 1);
    this.#heartbeat = new RedisScript(link, HEARTBEAT, 1);
    link.on('up', this.#onUp);
    if (link.up) this.#resync();
    this.#timer = setInterval(() => this.#beat(''), this.#heartbeatMs);
    this.#timer.unref();
  }

  /** The name this instance's connections are counted under now. */
  get instance(): string {
    return `${this.#base}:${this.#generation}`;
  }

  /** Checks the caps and, when admitted, counts the connection. Rejects when Redis did not answer. */
  async admit(key: string, limits: IpLimits): Promise<IpVerdict> {
    const r = await this.#admit.run(
      [this.link.key('ip', 'conn', key), this.link.key('instances'), this.link.key('ip', 'rate', key)],
      [this.instance, limits.connections, limits.rate, limits.windowMs, `${this.instance}:${++this.#seq}`, this.#idleKeyTtlMs],
    );
    return r === 0 ? 'ok' : r === 1 ? 'connections' : 'rate';
  }

  release(key: string): Promise<unknown> {
    return this.#add.run([this.link.key('ip', 'conn', key)], [this.instance, -1, this.#idleKeyTtlMs]);
  }

  /** Counts a connection without checking (one restored after a release). */
  force(key: string): Promise<unknown> {
    return this.#add.run([this.link.key('ip', 'conn', key)], [this.instance, 1, this.#idleKeyTtlMs]);
  }

  /** Stops the heartbeat and drops this instance's counts (they stop counting at once). */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.link.off('up', this.#onUp);
    if (!this.link.up) return;
    await this.link.client.hdel(this.link.key('instances'), this.instance).catch(() => undefined);
  }

  #beat(previous: string): void {
    if (!this.link.up) return;
    this.#heartbeat.run([this.link.key('instances')], [this.instance, this.#ttlMs, previous]).catch((err: unknown) => this.link.fault(err));
  }

  /** A new generation holding exactly what this host holds now. */
  #resync(): void {
    const previous = this.#generation === 0 ? '' : this.instance;
    this.#generation++;
    // Sent in this order on one connection: admissions issued after this see the new counts.
    this.#beat(previous);
    for (const [key, n] of this.opts.held()) {
      if (n <= 0) continue;
      const conn = this.link.key('ip', 'conn', key);
      this.link.client.hset(conn, this.instance, n).catch((err: unknown) => this.link.fault(err));
      this.link.client.pexpire(conn, this.#idleKeyTtlMs).catch(() => undefined);
    }
  }
}
