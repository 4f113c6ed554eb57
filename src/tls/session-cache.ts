// Server-side session-ID cache for TLS 1.2 clients that send no ticket, via newSession/resumeSession
// on a sink server. Node looks sessions up by legacy_session_id, which TLS 1.3 clients fill with
// random bytes, so the cache never helps TLS 1.3: the terminator gives clients offering TLS 1.3 (and
// TLS 1.2 clients offering tickets, which resume by ticket) a sink without these listeners (no
// ClientHello parser, no extra calls). The sessions live in a SessionStore: the host's cache in this
// process, or in the cluster primary's, asked over IPC. Node holds the handshake until the callbacks
// run: a lookup waits for its answer, and a new session's last flight waits until the session is
// stored, so the client cannot come back to another process (or host) before it is there. TLS 1.3
// sessions that still arrive are not stored, so they cannot push out useful entries.
import type tls from 'node:tls';
import { readTlv, smallInt, TAG } from './der.js';
import type { SessionStore } from './session-store.js';

const TLS1_3_VERSION = 0x0304;

/** The protocol version inside an ASN.1 SSL_SESSION (SEQUENCE { version 1, ssl_version, ... }), or null. */
export function sessionProtocol(der: Buffer): number | null {
  try {
    const top = readTlv(der);
    if (top.tag !== TAG.SEQUENCE) return null;
    const ver = readTlv(top.body, readTlv(top.body).end);
    return ver.tag === TAG.INTEGER ? smallInt(ver) : null;
  } catch {
    return null;
  }
}

/** What this process's handshakes asked of the store. */
export interface SessionCacheStats {
  stored: number;
  hits: number;
  misses: number;
  skippedTls13: number;
}

export class ServerSessionCache {
  readonly stats: SessionCacheStats = { stored: 0, hits: 0, misses: 0, skippedTls13: 0 };

  constructor(readonly store: SessionStore) {}

  /** Registers the listeners; sockets created with `server` afterwards get the session callbacks. */
  attach(server: tls.Server): void {
    server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
      if (sessionProtocol(data) === TLS1_3_VERSION) {
        this.stats.skippedTls13++;
        return done();
      }
      this.stats.stored++;
      this.store.put(id, data, done);
    });
    server.on('resumeSession', (id: Buffer, cb: (err: Error | null, data: Buffer | null) => void) => {
      this.store.get(id, (data) => {
        if (data) this.stats.hits++;
        else this.stats.misses++;
        cb(null, data);
      });
    });
  }
}
