// Pending ACME challenge answers, findable by whichever process the CA's validator reaches: the
// one that ordered (memory), the other processes of its host (files in the store's challenges/),
// and the other hosts (Redis, with `state.redis`). A validator may reach any of them: a cluster
// worker takes the connection, an L4 balancer picks any host.
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { SharedRedis } from './shared-redis.js';
import { atomicWrite } from './acme-store.js';

/** http-01: key = token, value = key authorization (RFC 8555 8.3). tls-alpn-01: key = domain, value = JSON {certPem, keyPem} (RFC 8737 3). */
export type ChallengeKind = 'http-01' | 'tls-alpn-01';

/** Pending answers expire: an order abandoned halfway must not leave them behind for long. */
const TTL_MS = 10 * 60_000;
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
const NAME = /^[a-z0-9.-]{1,253}$/;

export interface AlpnAnswer {
  certPem: string;
  keyPem: string;
}

export class ChallengeBoard {
  readonly #dir: string;
  readonly #redis: SharedRedis | null;
  readonly #local = new Map<string, string>();

  constructor(dir: string, redis: SharedRedis | null) {
    this.#dir = dir;
    this.#redis = redis;
  }

  #file(kind: ChallengeKind, key: string): string {
    return path.join(this.#dir, `${kind}.${key}.json`);
  }

  static validKey(kind: ChallengeKind, key: string): boolean {
    return kind === 'http-01' ? TOKEN.test(key) : NAME.test(key);
  }

  async put(kind: ChallengeKind, key: string, value: string): Promise<void> {
    this.#local.set(`${kind}:${key}`, value);
    await atomicWrite(this.#file(kind, key), JSON.stringify({ value, until: Date.now() + TTL_MS }), 0o600);
    if (this.#redis?.up) await this.#redis.client.set(this.#redis.key('acme', 'challenge', kind, key), value, 'PX', TTL_MS);
  }

  /** The answer wherever it is, or null. Never throws: a validator asking is no reason to fail. */
  async get(kind: ChallengeKind, key: string): Promise<string | null> {
    if (!ChallengeBoard.validKey(kind, key)) return null;
    const mine = this.#local.get(`${kind}:${key}`);
    if (mine !== undefined) return mine;
    try {
      const held = JSON.parse(await readFile(this.#file(kind, key), 'utf8')) as { value?: unknown; until?: unknown };
      if (typeof held.value === 'string' && typeof held.until === 'number' && held.until > Date.now()) return held.value;
    } catch {
      // not on this host
    }
    if (this.#redis?.up) {
      try {
        return await this.#redis.client.get(this.#redis.key('acme', 'challenge', kind, key));
      } catch {
        return null;
      }
    }
    return null;
  }

  async remove(kind: ChallengeKind, key: string): Promise<void> {
    this.#local.delete(`${kind}:${key}`);
    await rm(this.#file(kind, key), { force: true });
    if (this.#redis?.up) await this.#redis.client.del(this.#redis.key('acme', 'challenge', kind, key)).catch(() => 0);
  }
}
