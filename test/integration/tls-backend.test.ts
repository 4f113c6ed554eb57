// BackendTls against a real STARTTLS backend (a small Node SMTP server upgrading with a shared
// SecureContext, so its tickets resume): verification, host names, the session cache per profile.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { BackendSessionCache, BackendTls, TlsConfigError, TlsHandshakeError } from '../../src/tls/index.js';
import { greet } from '../../src/backend/greeted-pool.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';

interface Backend {
  port: number;
  server: { host: string; port: number; text: string };
  /** Per upgraded connection: what the backend saw. */
  seen: { resumed: boolean; servername: string | null; version: string | null }[];
  /** STARTTLS is answered 220 but no TLS is spoken (a stuck backend). */
  stall: boolean;
  /** Plaintext after the 220 to STARTTLS, in the same write (an injection on the way). */
  inject: string;
  close(): Promise<void>;
}

function readReply(sock: net.Socket | tls.TLSSocket, code: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(new Error(`no ${code}`)), 5000);
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (new RegExp(`(^|\\n)${code} `).test(buf)) done();
    };
    const onClose = () => done(new Error(`closed before ${code}`));
    const done = (err?: Error) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    sock.on('data', onData);
    sock.once('close', onClose);
  });
}

async function startBackend(leaf: Leaf, maxVersion: tls.SecureVersion = 'TLSv1.3'): Promise<Backend> {
  const ctx = tls.createSecureContext({ key: leaf.keyPem, cert: leaf.certPem, sessionIdContext: 'backend', maxVersion });
  const sockets = new Set<net.Socket>();
  const b: Backend = { port: 0, server: { host: '', port: 0, text: '' }, seen: [], stall: false, inject: '', close: async () => undefined };
  const srv = net.createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => undefined);
    raw.write('220 backend ESMTP\r\n');
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (/^EHLO/im.test(buf) && buf.endsWith('\r\n') && !/STARTTLS/i.test(buf)) {
        raw.write('250-backend\r\n250 STARTTLS\r\n');
        buf = '';
      } else if (/^STARTTLS\r\n/i.test(buf)) {
        raw.off('data', onData);
        raw.pause();
        raw.write('220 2.0.0 go ahead\r\n' + b.inject);
        if (b.stall) return;
        // Recorded from the ClientHello (SNICallback): the server's view after a TLS 1.2 resumption has no name.
        const seen = { resumed: false, servername: null as string | null, version: null as string | null };
        b.seen.push(seen);
        const s = new tls.TLSSocket(raw, {
          isServer: true,
          secureContext: ctx,
          SNICallback: (name, cb) => {
            seen.servername = name;
            cb(null, ctx);
          },
        });
        s.on('error', () => undefined);
        s.on('secure', () => {
          seen.resumed = s.isSessionReused();
          seen.version = s.getProtocol();
        });
        s.on('data', (x: Buffer) => {
          const t = x.toString('latin1');
          if (/^EHLO/i.test(t)) s.write('250-backend\r\n250 PIPELINING\r\n');
          else if (/^QUIT/i.test(t)) s.end('221 bye\r\n');
        });
      }
    };
    raw.on('data', onData);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  b.port = (srv.address() as net.AddressInfo).port;
  b.server = { host: '127.0.0.1', port: b.port, text: `127.0.0.1:${b.port}` };
  b.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      srv.close(() => r());
    });
  return b;
}

/** Postern's side up to the backend's 220 to STARTTLS. */
async function toStarttls(b: Backend): Promise<net.Socket> {
  const s = net.connect(b.port, '127.0.0.1');
  s.on('error', () => undefined);
  await readReply(s, '220');
  s.write('EHLO postern.test\r\n');
  await readReply(s, '250');
  s.write('STARTTLS\r\n');
  await readReply(s, '220');
  return s;
}

/** A whole backend session through `bt`: STARTTLS, handshake, EHLO (TLS 1.3 tickets arrive meanwhile), QUIT. */
async function session(bt: BackendTls, b: Backend, server = b.server) {
  const raw = await toStarttls(b);
  const { socket, info } = await bt.connect(raw, server, { timeoutMs: 3000 });
  socket.write('EHLO postern.test\r\n');
  await readReply(socket, '250');
  socket.write('QUIT\r\n');
  await readReply(socket, '221');
  socket.destroy();
  return info;
}

describe('BackendTls', () => {
  let pki: TestPki;
  let leaf: Leaf; // backend.example.org, signed by 'ca'
  let otherCa: string;
  let b13: Backend;
  let b12: Backend;

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('backend', 'ecdsa', ['backend.example.org']);
    otherCa = (await pki.ca('other-ca')).cert;
    b13 = await startBackend(leaf);
    b12 = await startBackend(leaf, 'TLSv1.2');
  });
  after(async () => {
    await b13.close();
    await b12.close();
    await pki.cleanup();
  });

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: verifies against backends.tls.ca and servername; the next connections resume`, async () => {
      const b = version === 'TLSv1.2' ? b12 : b13;
      const bt = new BackendTls({ verify: true, servername: 'backend.example.org', ca: leaf.ca.cert });
      const n = b.seen.length;
      const first = await session(bt, b);
      assert.deepEqual(first, { ...first, version, resumed: false, sni: 'backend.example.org' });
      const second = await session(bt, b);
      assert.equal(second.resumed, true);
      const third = await session(bt, b);
      assert.equal(third.resumed, true);
      // The backend sees SNI through SNICallback, which Node calls on full handshakes only.
      assert.deepEqual(
        b.seen.slice(n).map((s) => [s.resumed, s.servername, s.version]),
        [
          [false, 'backend.example.org', version],
          [true, null, version],
          [true, null, version],
        ],
      );
    });
  }

  it('a certificate from another CA fails verification (TlsHandshakeError, verify: true) and the socket is gone', async () => {
    const bt = new BackendTls({ verify: true, servername: 'backend.example.org', ca: otherCa });
    const raw = await toStarttls(b13);
    await assert.rejects(bt.connect(raw, b13.server), (err: unknown) => {
      assert.ok(err instanceof TlsHandshakeError);
      assert.equal(err.side, 'client');
      assert.equal(err.verify, true);
      assert.equal(err.reason, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      return true;
    });
    assert.equal(raw.destroyed, true);
    assert.equal(bt.cache.size, 0);
  });

  it('the system CAs do not know the test CA', async () => {
    const bt = new BackendTls({ verify: true, servername: 'backend.example.org', ca: null });
    await assert.rejects(session(bt, b13), (err: unknown) => err instanceof TlsHandshakeError && err.verify);
  });

  it('a wrong name fails the host-name check; an IP literal is checked but not sent as SNI', async () => {
    const wrong = new BackendTls({ verify: true, servername: 'mx.example.org', ca: leaf.ca.cert });
    await assert.rejects(session(wrong, b13), (err: unknown) => {
      assert.ok(err instanceof TlsHandshakeError);
      assert.equal(err.reason, 'ERR_TLS_CERT_ALTNAME_INVALID');
      return true;
    });
    const byIp = new BackendTls({ verify: true, servername: null, ca: leaf.ca.cert });
    const n = b13.seen.length;
    await assert.rejects(session(byIp, b13), (err: unknown) => err instanceof TlsHandshakeError && err.reason === 'ERR_TLS_CERT_ALTNAME_INVALID');
    assert.equal(b13.seen[n]?.servername, null, 'no SNI for an IP literal');
    // servername null: the server's configured host is the name (toStarttls always dials 127.0.0.1).
    const byName = new BackendTls({ verify: true, servername: null, ca: leaf.ca.cert });
    const info = await session(byName, b13, { host: 'backend.example.org', port: b13.port, text: `backend.example.org:${b13.port}` });
    assert.equal(info.sni, 'backend.example.org');
  });

  it('a session from a lax profile is never offered to a strict one (Node would skip the name check on resumption)', async () => {
    const cache = new BackendSessionCache();
    const lax = new BackendTls({ verify: false, servername: 'mx.example.org', ca: leaf.ca.cert }, { cache });
    const strict = new BackendTls({ verify: true, servername: 'mx.example.org', ca: leaf.ca.cert }, { cache });
    assert.notEqual(lax.cacheKey(b13.server), strict.cacheKey(b13.server));
    const a = await session(lax, b13);
    assert.equal(a.resumed, false);
    assert.equal((await session(lax, b13)).resumed, true, 'lax resumes its own sessions');
    await assert.rejects(session(strict, b13), (err: unknown) => err instanceof TlsHandshakeError && err.reason === 'ERR_TLS_CERT_ALTNAME_INVALID');

    // Why the key matters: plain Node resumes the lax session under strict settings and checks nothing.
    const laxSession = cache.get(lax.cacheKey(b13.server))!;
    const raw = await toStarttls(b13);
    const s = tls.connect({ socket: raw, servername: 'mx.example.org', ca: leaf.ca.pem, rejectUnauthorized: true, session: laxSession });
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', resolve);
      s.once('error', reject);
    });
    assert.equal(s.isSessionReused(), true);
    assert.equal(s.authorized, true);
    s.destroy();
  });

  it('a session the backend no longer accepts is dropped and replaced', async () => {
    const bt = new BackendTls({ verify: true, servername: 'backend.example.org', ca: leaf.ca.cert });
    const b = await startBackend(leaf);
    try {
      await session(bt, b);
      const key = bt.cacheKey(b.server);
      const old = bt.cache.get(key);
      assert.ok(old);
      // Another backend process on the same address: different ticket keys.
      await b.close();
      const b2 = await startBackend(leaf);
      try {
        const moved = { ...b2.server, text: b.server.text };
        const info = await session(bt, b2, moved);
        assert.equal(info.resumed, false);
        const now = bt.cache.get(key);
        assert.ok(now && !now.equals(old), 'the stale session was replaced');
        assert.equal((await session(bt, b2, moved)).resumed, true);
      } finally {
        await b2.close();
      }
    } finally {
      await b.close();
    }
  });

  it('plaintext sent after the 220 to STARTTLS is discarded: the capabilities are the ones said inside TLS (RFC 3207 §4.2)', async () => {
    const b = await startBackend(leaf);
    b.inject = '250-injected\r\n250-XCLIENT ADDR NAME\r\n250 AUTH PLAIN\r\n';
    try {
      const client = new BackendTls({ verify: true, servername: 'backend.example.org', ca: leaf.ca.cert });
      const g = await greet(b.server, { hostname: 'postern.test', connectTimeout: 2000, replyTimeout: 2000, tls: { mode: 'required', client } });
      try {
        assert.ok(g.conn.tls, 'the connection is under TLS');
        assert.deepEqual([...g.caps.keys()].sort(), ['PIPELINING'], 'only what the backend said inside TLS');
      } finally {
        g.conn.destroy();
      }
    } finally {
      await b.close();
    }
  });

  it('a backend that never starts TLS: reason "timeout"', async () => {
    const b = await startBackend(leaf);
    b.stall = true;
    try {
      const bt = new BackendTls({ verify: true, servername: 'backend.example.org', ca: leaf.ca.cert });
      const raw = await toStarttls(b);
      await assert.rejects(bt.connect(raw, b.server, { timeoutMs: 200 }), (err: unknown) => err instanceof TlsHandshakeError && err.reason === 'timeout');
      assert.equal(raw.destroyed, true);
    } finally {
      await b.close();
    }
  });

  it('an unreadable or non-PEM CA file is a TlsConfigError', () => {
    assert.throws(() => new BackendTls({ verify: true, servername: null, ca: path.join(pki.dir, 'nope.pem') }), (e: unknown) => e instanceof TlsConfigError && e.code === 'TLS_CA');
    assert.throws(() => new BackendTls({ verify: true, servername: null, ca: leaf.key }), (e: unknown) => e instanceof TlsConfigError && e.code === 'TLS_CA');
  });
});
