// The host's TLS session cache for cluster workers: the primary holds it, and each worker's
// newSession/resumeSession callbacks ask it over IPC (a round trip of well under a
// millisecond; Node holds the handshake meanwhile). Sessions travel as base64: the cluster's
// IPC is JSON. A primary that does not answer in time costs a full handshake, never a hang.

import type { SessionStore } from '../../tls/session-store.js';
import { MAX_SESSION_BYTES, validSessionKey } from '../../tls/session-store.js';
import { PendingCalls } from './pending-calls.js';

export type TlsSessionRequest = { postern: 'tls-session'; id: number; op: 'get' | 'put'; key: string; data?: string };
/** For a get, the session (base64) or null; for a put, null once stored. */
export type TlsSessionReply = { postern: 'tls-session-reply'; id: number; data: string | null };

export interface TlsSessionChannel {
  send(m: TlsSessionRequest): void;
  /** Registers the handler for replies from the primary. */
  onReply(handler: (m: TlsSessionReply) => void): void;
}

/** Past this the worker goes on without an answer: a miss for a lookup, a full handshake for the client. */
export const IPC_WAIT_MS = 1000;

/** The worker side. */
export class IpcSessionStore implements SessionStore {
  readonly #calls: PendingCalls<string | null>;

  constructor(
    private readonly channel: TlsSessionChannel,
    waitMs = IPC_WAIT_MS,
  ) {
    this.#calls = new PendingCalls<string | null>(null, waitMs);
    channel.onReply((m) => this.#calls.settle(m.id, typeof m.data === 'string' ? m.data : null));
  }

  put(id: Buffer, data: Buffer, done: () => void): void {
    this.#ask('put', id, data.toString('base64'), () => done());
  }

  get(id: Buffer, found: (data: Buffer | null) => void): void {
    this.#ask('get', id, undefined, (b64) => found(b64 === null ? null : Buffer.from(b64, 'base64')));
  }

  /** Every pending call is answered (as a miss) now: the primary is gone. */
  close(): void {
    this.#calls.settleAll();
  }

  #ask(op: 'get' | 'put', id: Buffer, data: string | undefined, done: (data: string | null) => void): void {
    const n = this.#calls.open(done);
    this.channel.send({ postern: 'tls-session', id: n, op, key: id.toString('hex'), ...(data === undefined ? {} : { data }) });
  }
}

/** The primary side: answers one worker's request from the host's cache. */
export function answerTlsSession(store: SessionStore, m: TlsSessionRequest, reply: (r: TlsSessionReply) => void): void {
  const id = m.id;
  if (!validSessionKey(m.key)) return reply({ postern: 'tls-session-reply', id, data: null });
  const key = Buffer.from(m.key, 'hex');
  if (m.op === 'put') {
    const data = typeof m.data === 'string' && m.data.length <= Math.ceil(MAX_SESSION_BYTES / 3) * 4 ? Buffer.from(m.data, 'base64') : null;
    if (!data || data.length === 0) return reply({ postern: 'tls-session-reply', id, data: null });
    return store.put(key, data, () => reply({ postern: 'tls-session-reply', id, data: null }));
  }
  store.get(key, (data) => reply({ postern: 'tls-session-reply', id, data: data ? data.toString('base64') : null }));
}
