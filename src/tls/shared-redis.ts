// What the ACME client needs of `state.redis` (a lock, the issued pair and the challenge
// answers, shared by hosts). The server hands a connection in (state/redis-link.ts is one);
// tls/ names only the commands it uses, so it depends on no room above it.

export interface RedisCommands {
  set(key: string, value: string): Promise<unknown>;
  set(key: string, value: string, px: 'PX', ms: number): Promise<unknown>;
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<unknown>;
  get(key: string): Promise<string | null>;
  del(key: string): Promise<number>;
  eval(script: string, keys: number, ...args: string[]): Promise<unknown>;
}

export interface SharedRedis {
  /** Connected now (a command sent while down would wait). */
  readonly up: boolean;
  /** Where it is, for log lines. */
  readonly where: string;
  /** A key under the configured prefix. */
  key(...parts: string[]): string;
  readonly client: RedisCommands;
  close(): Promise<void>;
}

/** Opens the connection when ACME first needs it (only hosts with `tls.acme` and `state.redis`). */
export type SharedRedisOpener = () => Promise<SharedRedis>;
