// Where TLS 1.2 sessions are kept by session ID, so that a client resuming by ID resumes on
// any process of the host (and, with Redis, on any host): the host's cache in this process
// (a single process, or a cluster's primary), or asked of the primary over IPC (a worker).
// Node's newSession/resumeSession events take callbacks, so an answer may come later.
import type { TlsConfig } from '../config/types.js';

export interface SessionStore {
  /** Stores a session; `done` once every process that shares the store can find it. */
  put(id: Buffer, data: Buffer, done: () => void): void;
  /** The session stored under `id` (null: none), by callback, at once or later. */
  get(id: Buffer, found: (data: Buffer | null) => void): void;
}

/** A stored session and when it stops being offered (ms epoch, this host's clock). */
export interface StoredSession {
  data: Buffer;
  expiresAt: number;
}

/**
 * Sessions shared with other hosts (Redis, state/redis-tls-sessions.ts), behind the host's
 * own cache. Keys are session IDs in hex. Rejections mean the store did not answer.
 */
export interface SharedSessions {
  /** Usable now; while it is not, the host's cache answers alone. */
  readonly up: boolean;
  /** For logs: where the sessions are kept. */
  readonly name: string;
  get(key: string): Promise<StoredSession | null>;
  set(key: string, data: Buffer, expiresAt: number): Promise<void>;
  /** `fn` runs each time the store becomes usable again after an outage. */
  onUp(fn: () => void): void;
}

/**
 * How long a cached session can be resumed: `session_cache.lifetime`, and never past the
 * ticket lifetime when tickets are on (the session timeout OpenSSL enforces is that lifetime,
 * so a session ID never outlives the ticket a client could have had instead).
 */
export function sessionCacheTtl(cfg: Pick<TlsConfig, 'session_tickets' | 'ticket_keys' | 'session_cache'>): number {
  const ttl = cfg.session_cache.lifetime;
  return cfg.session_tickets ? Math.min(ttl, cfg.ticket_keys.lifetime) : ttl;
}

/** A session ID as Node reports it is 1 to 32 bytes (RFC 5246 7.4.1.2); as a key, hex. */
export const MAX_SESSION_ID_BYTES = 32;
/** An SSL_SESSION in DER is a few hundred bytes (Postern asks for no client certificate); anything larger is refused. */
export const MAX_SESSION_BYTES = 8 * 1024;

export function validSessionKey(key: unknown): key is string {
  return typeof key === 'string' && key.length > 0 && key.length <= 2 * MAX_SESSION_ID_BYTES && key.length % 2 === 0 && /^[0-9a-f]+$/.test(key);
}
