// The host's TLS session cache, held by one process for all of the host's (the single process,
// or a cluster's primary, which answers its workers over IPC): an LRU bounded in entries and
// bytes, entries expiring at the session lifetime. With a shared store (Redis) behind it,
// every session is also written there and a lookup this host cannot answer is asked of it,
// so a session made on another host (or before a restart) resumes here. While the shared
// store is away the host's cache answers alone; what was stored meanwhile is written to the
// shared store when it returns.
import { LRUCache } from 'lru-cache';
import { MAX_SESSION_BYTES, MAX_SESSION_ID_BYTES, type SessionStore, type SharedSessions, type StoredSession } from './session-store.js';

export interface HostSessionCacheOptions {
  /** Entries at most (tls.session_cache.size). */
  size: number;
  /** How long a session can be resumed (sessionCacheTtl). */
  ttlMs: number;
  shared?: SharedSessions | null;
  /** How long a lookup or a store waits for the shared store before going on without it. */
  sharedWaitMs?: number;
  now?: () => number;
}

export interface HostSessionCacheStats {
  /** Sessions held now. */
  sessions: number;
  /** tls.session_cache.size. */
  capacity: number;
  /** Lookups answered, from this host's cache or the shared store. */
  hits: number;
  /** Of `hits`, those only the shared store knew (another host's session, or one from before a restart). */
  sharedHits: number;
  misses: number;
  stored: number;
  /** Whether the shared store is usable now; null without one. */
  sharedUp: boolean | null;
}

/** Average bytes per entry allowed before entries are evicted by size rather than by count (a session is ~200 B). */
const AVERAGE_ENTRY_BYTES = 2048;
/** A store or lookup in Redis takes well under a millisecond; past this, the handshake goes on without it. */
export const SHARED_WAIT_MS = 200;

export class HostSessionCache implements SessionStore {
  readonly #lru: LRUCache<string, StoredSession>;
  readonly #size: number;
  readonly #ttl: number;
  readonly #shared: SharedSessions | null;
  readonly #wait: number;
  readonly #now: () => number;
  /** Sessions stored while the shared store was away, oldest first: written to it when it returns. */
  readonly #unshared = new Set<string>();
  #hits = 0;
  #sharedHits = 0;
  #misses = 0;
  #stored = 0;

  constructor(opts: HostSessionCacheOptions) {
    this.#size = Math.max(1, opts.size);
    this.#ttl = Math.max(1, opts.ttlMs);
    this.#shared = opts.shared ?? null;
    this.#wait = opts.sharedWaitMs ?? SHARED_WAIT_MS;
    this.#now = opts.now ?? Date.now;
    this.#lru = new LRUCache<string, StoredSession>({
      max: this.#size,
      maxSize: this.#size * AVERAGE_ENTRY_BYTES,
      sizeCalculation: (v, k) => v.data.length + k.length,
      ttl: this.#ttl,
      ttlAutopurge: false,
    });
    this.#shared?.onUp(() => this.#writeBack());
  }

  put(id: Buffer, data: Buffer, done: () => void): void {
    if (id.length === 0 || id.length > MAX_SESSION_ID_BYTES || data.length > MAX_SESSION_BYTES) return done();
    const key = id.toString('hex');
    const expiresAt = this.#now() + this.#ttl;
    this.#set(key, { data, expiresAt });
    this.#stored++;
    const shared = this.#shared;
    if (!shared) return done();
    if (!shared.up) {
      this.#remember(key);
      return done();
    }
    // The handshake waits (briefly) so that the client cannot be back, on another host, before the session is there.
    const stored = shared.set(key, data, expiresAt).then(
      () => true,
      () => {
        this.#remember(key);
        return false;
      },
    );
    this.#within(stored, () => done());
  }

  get(id: Buffer, found: (data: Buffer | null) => void): void {
    const key = id.toString('hex');
    const e = this.#lru.get(key);
    if (e && e.expiresAt > this.#now()) {
      this.#hits++;
      return found(e.data);
    }
    const shared = this.#shared;
    if (!shared?.up || id.length === 0 || id.length > MAX_SESSION_ID_BYTES) {
      this.#misses++;
      return found(null);
    }
    this.#within(shared.get(key), (r) => {
      const now = this.#now();
      if (!r || r.expiresAt <= now || r.data.length > MAX_SESSION_BYTES) {
        this.#misses++;
        return found(null);
      }
      const s = { data: r.data, expiresAt: Math.min(r.expiresAt, now + this.#ttl) };
      this.#set(key, s);
      this.#hits++;
      this.#sharedHits++;
      found(s.data);
    });
  }

  stats(): HostSessionCacheStats {
    return {
      sessions: this.#lru.size,
      capacity: this.#size,
      hits: this.#hits,
      sharedHits: this.#sharedHits,
      misses: this.#misses,
      stored: this.#stored,
      sharedUp: this.#shared ? this.#shared.up : null,
    };
  }

  /** The sessions held now, least recently used first (the order restore() keeps). */
  entries(): [string, StoredSession][] {
    const now = this.#now();
    return [...this.#lru.entries()].filter(([, v]) => v.expiresAt > now).reverse();
  }

  /** Takes sessions saved earlier (a file written at the last stop); expired ones are left out. */
  restore(entries: Iterable<[string, StoredSession]>): number {
    const now = this.#now();
    let n = 0;
    for (const [key, v] of entries) {
      if (v.expiresAt <= now || v.data.length > MAX_SESSION_BYTES || key.length === 0 || key.length > 2 * MAX_SESSION_ID_BYTES) continue;
      this.#set(key, { data: v.data, expiresAt: Math.min(v.expiresAt, now + this.#ttl) });
      n++;
    }
    return n;
  }

  #set(key: string, s: StoredSession): void {
    this.#lru.set(key, s, { ttl: Math.max(1, s.expiresAt - this.#now()) });
  }

  /** `then` gets the answer, or null when the shared store failed or did not answer in time. */
  #within<T>(p: Promise<T>, then: (v: T | null) => void): void {
    let settled = false;
    const settle = (v: T | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      then(v);
    };
    const timer = setTimeout(() => settle(null), this.#wait);
    p.then(settle, () => settle(null));
  }

  #remember(key: string): void {
    this.#unshared.delete(key);
    this.#unshared.add(key);
    // Bounded like the cache: the oldest would have been evicted from it first anyway.
    if (this.#unshared.size > this.#size) this.#unshared.delete(this.#unshared.values().next().value!);
  }

  #writeBack(): void {
    const shared = this.#shared!;
    const keys = [...this.#unshared];
    this.#unshared.clear();
    const now = this.#now();
    for (const key of keys) {
      const e = this.#lru.peek(key);
      if (!e || e.expiresAt <= now) continue;
      shared.set(key, e.data, e.expiresAt).catch(() => this.#remember(key));
    }
  }
}
