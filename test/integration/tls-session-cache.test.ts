// The terminator and its session store, in-process with real handshakes (Node TLS clients):
// which clients reach the store (TLS 1.2 without tickets only), that a handshake waits for
// the store's answers (a new session is stored before the client has it), that a primary
// that does not answer costs a full handshake and no hang, and two terminators sharing one
// host cache over an IPC-like channel resuming each other's sessions, as cluster workers do.
import assert from 'node:assert/strict';
import { constants } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { TlsConfig } from '../../src/config/types.js';
import { answerTlsSession, IpcSessionStore, type TlsSessionReply, type TlsSessionRequest } from '../../src/server/cluster/tls-sessions.js';
import { HostSessionCache, TlsTerminator, type SessionStore } from '../../src/tls/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';

const logger = { info: () => undefined, warn: () => undefined };

function config(leaf: Leaf, over: Partial<TlsConfig> = {}): TlsConfig {
  return {
    certificates: [{ cert: leaf.cert, key: leaf.key }],
    acme: null,
    watch: { interval: 0, expiry_warning: 0 },
    min_version: 'TLSv1.2',
    session_tickets: true,
    ticket_keys: { file: null, rotate: 3600_000, lifetime: 7200_000 },
    session_cache: { size: 100, lifetime: 7200_000, file: null },
    ...over,
  };
}

/** Counts what the terminator asks of the store, and can answer late. */
class WatchedStore implements SessionStore {
  puts = 0;
  gets = 0;
  delayMs = 0;
  putDoneAt = 0;
  constructor(readonly inner: SessionStore = new HostSessionCache({ size: 100, ttlMs: 60_000 })) {}
  put(id: Buffer, data: Buffer, done: () => void): void {
    this.puts++;
    this.inner.put(id, data, () =>
      setTimeout(() => {
        this.putDoneAt = Date.now();
        done();
      }, this.delayMs),
    );
  }
  get(id: Buffer, found: (d: Buffer | null) => void): void {
    this.gets++;
    this.inner.get(id, (d) => setTimeout(() => found(d), this.delayMs));
  }
}

interface Server {
  port: number;
  close(): Promise<void>;
}

async function serve(term: TlsTerminator): Promise<Server> {
  const server = net.createServer((raw) => {
    raw.on('error', () => undefined);
    raw.pause();
    term.accept(raw).then(
      ({ socket }) => {
        socket.on('error', () => undefined);
        socket.end('220 x ESMTP\r\n');
      },
      () => undefined,
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        term.close();
        server.close(() => r());
      }),
  };
}

interface Shake {
  reused: boolean;
  session: Buffer;
  /** connect() to secureConnect, ms. */
  ms: number;
  at: number;
}

/** A TLS 1.2 handshake; `tickets: false` sends no SessionTicket extension (resumption by session ID). */
function shake(port: number, opts: { session?: Buffer; tickets: boolean }): Promise<Shake> {
  const t0 = Date.now();
  const s = tls.connect({
    host: '127.0.0.1',
    port,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.2',
    session: opts.session,
    ...(opts.tickets ? {} : { secureOptions: constants.SSL_OP_NO_TICKET }),
  });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.once('secureConnect', () => {
      const r = { reused: s.isSessionReused(), session: s.getSession()!, ms: Date.now() - t0, at: Date.now() };
      s.destroy();
      resolve(r);
    });
  });
}

describe('the terminator and its session store', () => {
  let pki: TestPki;
  let leaf: Leaf;
  const open: Server[] = [];

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('store', 'ecdsa', ['store.example']);
  });
  after(async () => {
    for (const s of open) await s.close();
    await pki.cleanup();
  });

  async function start(store: SessionStore, over: Partial<TlsConfig> = {}): Promise<Server> {
    const s = await serve(await TlsTerminator.create(config(leaf, over), { logger, sessionStore: store }));
    open.push(s);
    return s;
  }

  it('only TLS 1.2 clients without tickets reach the store; the others resume with their ticket', async () => {
    const store = new WatchedStore();
    const s = await start(store);
    const t1 = await shake(s.port, { tickets: true });
    const t2 = await shake(s.port, { tickets: true, session: t1.session });
    assert.equal(t2.reused, true, 'resumed by ticket');
    assert.deepEqual([store.puts, store.gets], [0, 0], 'a client that takes tickets never costs a store or a lookup');
    const n1 = await shake(s.port, { tickets: false });
    const n2 = await shake(s.port, { tickets: false, session: n1.session });
    assert.equal(n2.reused, true, 'resumed by session ID');
    assert.deepEqual([store.puts, store.gets], [1, 1]);
  });

  it('with tickets off, every TLS 1.2 client resumes by session ID from the store', async () => {
    const store = new WatchedStore();
    const s = await start(store, { session_tickets: false });
    const a = await shake(s.port, { tickets: true });
    const b = await shake(s.port, { tickets: true, session: a.session });
    assert.equal(b.reused, true);
    assert.deepEqual([store.puts, store.gets], [1, 1]);
  });

  it('a handshake waits for the store: the client has its session only once it is stored, and a late lookup still resumes', async () => {
    const store = new WatchedStore();
    store.delayMs = 80;
    const s = await start(store);
    const a = await shake(s.port, { tickets: false });
    assert.ok(a.ms >= 70, `the full handshake waited for the store (${a.ms} ms)`);
    assert.ok(a.at >= store.putDoneAt, 'the client finished after the session was stored');
    const b = await shake(s.port, { tickets: false, session: a.session });
    assert.equal(b.reused, true);
    assert.ok(b.ms >= 70, `the resumption waited for the lookup (${b.ms} ms)`);
  });

  /** A channel to `primary` that behaves like the cluster IPC: asynchronous, JSON on the wire. */
  function ipc(primary: SessionStore, opts: { drop?: boolean; waitMs?: number } = {}): IpcSessionStore {
    let onReply: (m: TlsSessionReply) => void = () => undefined;
    return new IpcSessionStore(
      {
        send: (m: TlsSessionRequest) => {
          if (opts.drop) return;
          const wire = JSON.parse(JSON.stringify(m)) as TlsSessionRequest;
          setImmediate(() => answerTlsSession(primary, wire, (r) => setImmediate(() => onReply(JSON.parse(JSON.stringify(r)) as TlsSessionReply))));
        },
        onReply: (h) => (onReply = h),
      },
      opts.waitMs,
    );
  }

  it('two terminators with one host cache (as two workers and their primary) resume each other\'s sessions 16/16', async () => {
    const host = new HostSessionCache({ size: 100, ttlMs: 60_000 });
    const [w1, w2] = [await start(ipc(host)), await start(ipc(host))];
    let session = (await shake(w1.port, { tickets: false })).session;
    for (let i = 0; i < 16; i++) {
      const r = await shake(i % 2 === 0 ? w2.port : w1.port, { tickets: false, session });
      assert.equal(r.reused, true, `round ${i}`);
      session = r.session;
    }
    assert.deepEqual({ hits: host.stats().hits, misses: host.stats().misses, stored: host.stats().stored }, { hits: 16, misses: 0, stored: 1 });
    // The same two with caches of their own: what each worker had before.
    const [o1, o2] = [await start(new HostSessionCache({ size: 100, ttlMs: 60_000 })), await start(new HostSessionCache({ size: 100, ttlMs: 60_000 }))];
    const first = await shake(o1.port, { tickets: false });
    assert.equal((await shake(o2.port, { tickets: false, session: first.session })).reused, false, 'a cache per worker: the other worker cannot resume it');
  });

  it('a primary that does not answer costs a full handshake after the wait, never a hang', async () => {
    const s = await start(ipc(new HostSessionCache({ size: 100, ttlMs: 60_000 }), { drop: true, waitMs: 100 }));
    const a = await shake(s.port, { tickets: false });
    assert.ok(a.ms >= 90 && a.ms < 5000, `${a.ms} ms`);
    const b = await shake(s.port, { tickets: false, session: a.session });
    assert.equal(b.reused, false);
  });
});
