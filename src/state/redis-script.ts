// A Lua script run atomically in Redis: sent once, then called by its SHA1 (ioredis falls
// back to EVAL when Redis has forgotten it, e.g. after a restart).

import type { RedisLink } from './redis-link.js';

type Call = (...args: (string | number)[]) => Promise<unknown>;

let defined = 0;

export class RedisScript {
  readonly #name: string;

  constructor(
    private readonly link: RedisLink,
    lua: string,
    private readonly numberOfKeys: number,
  ) {
    this.#name = `postern${++defined}`;
    link.client.defineCommand(this.#name, { lua, numberOfKeys });
  }

  run(keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    if (keys.length !== this.numberOfKeys) throw new Error(`script expects ${this.numberOfKeys} keys, got ${keys.length}`);
    const call = (this.link.client as unknown as Record<string, Call>)[this.#name]!;
    return call.call(this.link.client, ...keys, ...args);
  }
}

/** Lua: the server's clock in milliseconds, so every instance measures windows by one clock. */
export const LUA_NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
