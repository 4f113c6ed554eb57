// TLS 1.2 sessions in Redis, keyed by session ID, so that a client resuming by session ID
// resumes on any instance: one string per session (the SSL_SESSION's DER) with its lifetime
// as the key's TTL, so Redis forgets it when no process may resume it any more. Remaining
// lifetimes come from Redis (PTTL), so instances' clocks need not agree. Used behind the
// host's own cache (tls/host-session-cache.ts), which answers alone while Redis is away.

import type { SharedSessions, StoredSession } from '../tls/session-store.js';
import type { RedisLink } from './redis-link.js';

export class RedisTlsSessions implements SharedSessions {
  readonly name: string;

  constructor(private readonly link: RedisLink) {
    this.name = `redis ${link.where} ${link.key('tls', 'session', '*')}`;
  }

  get up(): boolean {
    return this.link.up;
  }

  async get(key: string): Promise<StoredSession | null> {
    const k = this.link.key('tls', 'session', key);
    try {
      // One round trip: the link pipelines commands issued in the same turn.
      const [data, ttl] = await Promise.all([this.link.client.getBuffer(k), this.link.client.pttl(k)]);
      // ttl < 0: gone meanwhile (-2) or no expiry (-1: not one of ours).
      if (data === null || ttl <= 0) return null;
      return { data, expiresAt: Date.now() + ttl };
    } catch (err) {
      this.link.fault(err);
      throw err;
    }
  }

  async set(key: string, data: Buffer, expiresAt: number): Promise<void> {
    const ttl = Math.round(expiresAt - Date.now());
    if (ttl <= 0) return;
    try {
      await this.link.client.set(this.link.key('tls', 'session', key), data, 'PX', ttl);
    } catch (err) {
      this.link.fault(err);
      throw err;
    }
  }

  onUp(fn: () => void): void {
    this.link.on('up', fn);
  }
}
