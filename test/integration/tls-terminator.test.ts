// TlsTerminator with real handshakes: `openssl s_client` and Node clients against a tiny SMTP
// test server (scaffolding only) that hands its raw sockets to accept(), implicitly or after STARTTLS.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, readFile, stat, writeFile, copyFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { TlsConfig } from '../../src/config/types.js';
import { duplexPair } from '../../src/tls/duplex-pair.js';
import { TlsConfigError, TlsHandshakeError, TlsTerminator, type TlsInfo } from '../../src/tls/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { realClientHello } from '../helpers/tls-clients.js';

// ---------- scaffolding ----------

interface LogLine {
  level: 'info' | 'warn';
  msg: string | undefined;
  obj: object;
}

function testLogger() {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (obj: object, msg?: string) => void lines.push({ level: 'info', msg, obj }),
    warn: (obj: object, msg?: string) => void lines.push({ level: 'warn', msg, obj }),
  };
}

function tlsConfig(certs: (Leaf | { leaf: Leaf; ocsp: string })[], over: Partial<TlsConfig> = {}): TlsConfig {
  return {
    certificates: certs.map((c) => ('leaf' in c ? { cert: c.leaf.cert, key: c.leaf.key, ocsp: c.ocsp } : { cert: c.cert, key: c.key })),
    acme: null,
    watch: { interval: 0, expiry_warning: 0 },
    min_version: 'TLSv1.2',
    session_tickets: true,
    ticket_keys: { file: null, rotate: 3600_000, lifetime: 7200_000 },
    session_cache: { size: 1000, lifetime: 7200_000, file: null },
    ...over,
  };
}

type Outcome = { info: TlsInfo; error?: undefined } | { info?: undefined; error: TlsHandshakeError };

interface TestServer {
  port: number;
  outcomes: Outcome[];
  /** The n-th outcome (0-based), waiting for it. */
  outcome(n: number): Promise<Outcome>;
  close(): Promise<void>;
}

/** Calls `fn` per line; when it returns 'stop', stops and hands it the bytes after that line. */
function onLines(sock: net.Socket | tls.TLSSocket, fn: (line: string) => void | 'stop', rest?: (b: Buffer) => void): (d: Buffer) => void {
  let buf = '';
  const listener = (d: Buffer) => {
    buf += d.toString('latin1');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).replace(/\r$/, '');
      buf = buf.slice(i + 1);
      if (fn(line) === 'stop') {
        sock.off('data', listener);
        rest?.(Buffer.from(buf, 'latin1'));
        return;
      }
    }
  };
  sock.on('data', listener);
  return listener;
}

function smtpOverTls(sock: tls.TLSSocket): void {
  sock.on('error', () => undefined);
  onLines(sock, (line) => {
    const verb = line.slice(0, 4).toUpperCase();
    if (verb === 'EHLO') sock.write('250-x\r\n250 PIPELINING\r\n');
    else if (verb === 'QUIT') sock.end('221 2.0.0 bye\r\n');
    else sock.write('250 ok\r\n');
  });
}

async function startTestServer(term: TlsTerminator, mode: 'starttls' | 'implicit', timeoutMs = 5000): Promise<TestServer> {
  const outcomes: Outcome[] = [];
  const waiters: (() => void)[] = [];
  const record = (o: Outcome) => {
    outcomes.push(o);
    waiters.splice(0).forEach((w) => w());
  };
  const upgrade = (raw: net.Socket, head?: Buffer) =>
    term.accept(raw, { timeoutMs, head }).then(
      ({ socket, info }) => {
        record({ info });
        smtpOverTls(socket);
        if (mode === 'implicit') socket.write('220 x ESMTP\r\n');
      },
      (error: TlsHandshakeError) => record({ error }),
    );
  const sockets = new Set<net.Socket>();
  // As Postern's listeners (server/listener.ts): half-open allowed, which the TLS socket inherits.
  const server = net.createServer({ allowHalfOpen: true }, (raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => undefined);
    if (mode === 'implicit') {
      raw.pause();
      void upgrade(raw);
      return;
    }
    raw.write('220 x ESMTP\r\n');
    // Bytes pipelined after STARTTLS are handed to accept() as `head` (Postern proper discards them
    // with an anomaly): plaintext there must fail the handshake, never be answered.
    onLines(
      raw,
      (line) => {
        const verb = line.slice(0, 8).toUpperCase();
        if (verb.startsWith('EHLO')) raw.write('250-x\r\n250 STARTTLS\r\n');
        else if (verb === 'STARTTLS') {
          raw.pause();
          raw.write('220 2.0.0 Ready to start TLS\r\n');
          return 'stop';
        } else if (verb.startsWith('QUIT')) raw.end('221 bye\r\n');
        else raw.write('502 5.5.1 no\r\n');
      },
      (rest) => void upgrade(raw, rest),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    outcomes,
    outcome: (n) =>
      new Promise<Outcome>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no outcome #${n} within 10 s`)), 10_000);
        const check = () => {
          if (outcomes[n]) {
            clearTimeout(timer);
            resolve(outcomes[n]);
          } else waiters.push(check);
        };
        check();
      }),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

interface SClient {
  out: string;
  reused: boolean;
  protocol: string | null;
  subject: string | null;
  peerSignature: string | null;
}

/** `openssl s_client`, QUIT after a pause (so TLS 1.3 tickets arrive and -sess_out holds one). */
function sClient(port: number, args: string[], pauseMs = 400): Promise<SClient> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      const out = stdout + stderr;
      if (err && !/(New|Reused), TLS/.test(out)) return reject(new Error(`s_client failed: ${err.message}\n${out}`));
      const m = /^(New|Reused), (TLSv1\.[0-3])/m.exec(out);
      resolve({
        out,
        reused: m?.[1] === 'Reused',
        protocol: m?.[2] ?? null,
        subject: /^subject=(.*)$/m.exec(out)?.[1] ?? null,
        peerSignature: /^Peer signature type: (.*)$/m.exec(out)?.[1] ?? null,
      });
    });
    setTimeout(() => {
      child.stdin?.write('QUIT\r\n');
      child.stdin?.end();
    }, pauseMs);
  });
}

interface NodeResult {
  reused: boolean;
  protocol: string | null;
  session: Buffer | null;
  cert: tls.PeerCertificate;
  ocsp: Buffer | null;
  authorized: boolean;
}

interface NodeOpts {
  ca?: string;
  servername?: string;
  session?: Buffer | null;
  version?: tls.SecureVersion;
  sigalgs?: string;
  requestOCSP?: boolean;
}

/** Reads lines until one starts with `code ` (a final reply line). */
function waitReply(sock: net.Socket | tls.TLSSocket, code: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(new Error(`no ${code} reply`)), 5000);
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (new RegExp(`(^|\\n)${code} `).test(buf)) done();
    };
    const onClose = () => done(new Error(`closed before ${code}: ${JSON.stringify(buf)}`));
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

async function nodeClient(port: number, mode: 'starttls' | 'implicit', o: NodeOpts = {}): Promise<NodeResult> {
  let socket: net.Socket | undefined;
  if (mode === 'starttls') {
    socket = net.connect(port, '127.0.0.1');
    await waitReply(socket, '220');
    socket.write('EHLO client.test\r\n');
    await waitReply(socket, '250');
    socket.write('STARTTLS\r\n');
    await waitReply(socket, '220');
  }
  const where: tls.ConnectionOptions = socket ? { socket } : { host: '127.0.0.1', port };
  // requestOCSP is passed through by tls.connect (lib/_tls_wrap.js) but missing from @types/node's ConnectionOptions.
  const options: tls.ConnectionOptions & { requestOCSP?: boolean } = {
    ...where,
    ca: o.ca,
    servername: o.servername,
    rejectUnauthorized: o.ca !== undefined,
    checkServerIdentity: () => undefined,
    session: o.session ?? undefined,
    ...(o.version ? { minVersion: o.version, maxVersion: o.version } : {}),
    ...(o.sigalgs ? { sigalgs: o.sigalgs } : {}),
    requestOCSP: o.requestOCSP ?? false,
  };
  const s = tls.connect(options);
  let session: Buffer | null = null;
  let ocsp: Buffer | null = null;
  s.on('session', (b: Buffer) => (session = b));
  s.on('OCSPResponse', (b: Buffer) => (ocsp = b));
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve);
    s.once('error', reject);
  });
  const res = { reused: s.isSessionReused(), protocol: s.getProtocol(), cert: s.getPeerCertificate(), authorized: s.authorized };
  if (mode === 'implicit') await waitReply(s, '220');
  else {
    s.write('EHLO client.test\r\n');
    await waitReply(s, '250');
  }
  s.write('QUIT\r\n');
  await waitReply(s, '221');
  if (res.protocol === 'TLSv1.2' && !session) session = s.getSession() ?? null;
  s.destroy();
  return { ...res, session, ocsp };
}

// ---------- tests ----------

describe('TlsTerminator', () => {
  let pki: TestPki;
  let rsa: Leaf; //    mx.example.org (RSA, the default)
  let ec: Leaf; //     mx.example.org (ECDSA, same name)
  let other: Leaf; //  other.example.net, *.wild.example.net (RSA)
  let ecOnly: Leaf; // ec.example.com (ECDSA)
  const cleanups: (() => unknown)[] = [];

  before(async () => {
    pki = await makePki();
    [rsa, ec, other, ecOnly] = await Promise.all([
      pki.leaf('mx-rsa', 'rsa', ['mx.example.org']),
      pki.leaf('mx-ec', 'ecdsa', ['mx.example.org']),
      pki.leaf('other', 'rsa', ['other.example.net', '*.wild.example.net']),
      pki.leaf('ec-only', 'ecdsa', ['ec.example.com']),
    ]);
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
    await pki.cleanup();
  });

  async function setup(cfg: TlsConfig, mode: 'starttls' | 'implicit', extra: { ticketKeyCallback?: 'auto' | 'off'; ocspPollMs?: number; timeoutMs?: number } = {}) {
    const logger = testLogger();
    const term = await TlsTerminator.create(cfg, { logger, ...extra });
    const server = await startTestServer(term, mode, extra.timeoutMs);
    cleanups.push(() => server.close(), () => term.close());
    return { term, server, logger };
  }

  describe('resumption', () => {
    let term: TlsTerminator;
    let implicit: TestServer;
    let starttls: TestServer;
    before(async () => {
      ({ term, server: implicit } = await setup(tlsConfig([rsa, ec, other]), 'implicit'));
      starttls = await startTestServer(term, 'starttls');
      cleanups.push(() => starttls.close());
    });

    it('uses the ticket-key callback on this Node', () => {
      assert.equal(term.ticketMode, 'callback');
    });

    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      it(`implicit TLS, Node client, ${version}: the second connection resumes from a ticket`, async () => {
        const n = implicit.outcomes.length;
        const first = await nodeClient(implicit.port, 'implicit', { version, ca: rsa.ca.pem, servername: 'mx.example.org' });
        assert.equal(first.reused, false);
        assert.equal(first.protocol, version);
        assert.ok(first.session, 'got a session');
        const second = await nodeClient(implicit.port, 'implicit', { version, ca: rsa.ca.pem, servername: 'mx.example.org', session: first.session });
        assert.equal(second.reused, true);
        const a = await implicit.outcome(n);
        const b = await implicit.outcome(n + 1);
        assert.deepEqual(a.info && { ...a.info, cipher: 'x' }, { version, cipher: 'x', resumed: false, sni: 'mx.example.org' });
        assert.equal(b.info?.resumed, true);
        assert.equal(b.info?.version, version);
        assert.equal(b.info?.sni, 'mx.example.org', 'SNI is reported on resumed handshakes too');
      });

      it(`STARTTLS, Node client, ${version}: the second connection resumes`, async () => {
        const first = await nodeClient(starttls.port, 'starttls', { version, ca: rsa.ca.pem });
        const second = await nodeClient(starttls.port, 'starttls', { version, ca: rsa.ca.pem, session: first.session });
        assert.equal(second.reused, true);
        assert.equal(second.authorized, true);
      });

      const flag = version === 'TLSv1.2' ? '-tls1_2' : '-tls1_3';
      it(`STARTTLS, openssl s_client -starttls smtp ${flag}: -sess_out then -sess_in is Reused`, async () => {
        const sess = path.join(pki.dir, `sc-starttls-${version}`);
        const n = starttls.outcomes.length;
        const a = await sClient(starttls.port, ['-starttls', 'smtp', flag, '-CAfile', rsa.ca.cert, '-sess_out', sess]);
        assert.equal(a.reused, false, a.out);
        assert.equal(a.protocol, version);
        const b = await sClient(starttls.port, ['-starttls', 'smtp', flag, '-CAfile', rsa.ca.cert, '-sess_in', sess]);
        assert.equal(b.reused, true, b.out);
        assert.equal((await starttls.outcome(n + 1)).info?.resumed, true);
      });

      it(`implicit TLS, openssl s_client ${flag}: -sess_out then -sess_in is Reused`, async () => {
        const sess = path.join(pki.dir, `sc-implicit-${version}`);
        const a = await sClient(implicit.port, [flag, '-sess_out', sess]);
        assert.equal(a.reused, false, a.out);
        const b = await sClient(implicit.port, [flag, '-sess_in', sess]);
        assert.equal(b.reused, true, b.out);
      });
    }

    it('a ticket from implicit TLS resumes after STARTTLS on another listener (same terminator)', async () => {
      const first = await nodeClient(implicit.port, 'implicit', { version: 'TLSv1.3' });
      const second = await nodeClient(starttls.port, 'starttls', { version: 'TLSv1.3', session: first.session });
      assert.equal(second.reused, true);
    });

    it('TLS 1.2 without tickets (-no_ticket) resumes from the session cache', async () => {
      const before = term.sessionCacheStats!;
      const sess = path.join(pki.dir, 'sc-noticket');
      const a = await sClient(starttls.port, ['-starttls', 'smtp', '-tls1_2', '-no_ticket', '-sess_out', sess]);
      assert.equal(a.reused, false, a.out);
      const b = await sClient(starttls.port, ['-starttls', 'smtp', '-tls1_2', '-no_ticket', '-sess_in', sess]);
      assert.equal(b.reused, true, b.out);
      const after = term.sessionCacheStats!;
      assert.equal(after.stored, before.stored + 1);
      assert.equal(after.hits, before.hits + 1);
    });

    it('clients offering TLS 1.3 never touch the session cache (no listener runs for them)', async () => {
      const before = term.sessionCacheStats!;
      await nodeClient(implicit.port, 'implicit', { version: 'TLSv1.3' });
      await nodeClient(starttls.port, 'starttls');
      await sClient(implicit.port, ['-no_ticket']);
      assert.deepEqual(term.sessionCacheStats, before);
      await sClient(implicit.port, ['-tls1_2', '-no_ticket']);
      assert.equal(term.sessionCacheStats!.stored, before.stored + 1, 'a TLS 1.2-only client without tickets is cached');
    });
  });

  describe('SNI and key types', () => {
    let server: TestServer;
    before(async () => {
      ({ server } = await setup(tlsConfig([rsa, ec, other, ecOnly]), 'implicit'));
    });

    const ecdsa = 'ecdsa_secp256r1_sha256';
    const rsaAlgs = 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256';

    it('a name with an RSA and an ECDSA certificate serves either, by the client signature algorithms', async () => {
      for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
        const e = await nodeClient(server.port, 'implicit', { version, servername: 'mx.example.org', sigalgs: ecdsa, ca: rsa.ca.pem });
        assert.equal(e.cert.subjectaltname, 'DNS:mx.example.org');
        assert.equal(e.cert.asn1Curve, 'prime256v1', version);
        const r = await nodeClient(server.port, 'implicit', { version, servername: 'mx.example.org', sigalgs: rsaAlgs, ca: rsa.ca.pem });
        assert.equal(r.cert.subjectaltname, 'DNS:mx.example.org');
        assert.equal(r.cert.bits, 2048, version);
      }
    });

    it('no SNI or an unknown name gets the default (first) certificate, paired with its ECDSA sibling', async () => {
      const none = await nodeClient(server.port, 'implicit', { sigalgs: rsaAlgs });
      assert.equal(none.cert.fingerprint256, new (await import('node:crypto')).X509Certificate(rsa.certPem).fingerprint256);
      const unknown = await nodeClient(server.port, 'implicit', { servername: 'nobody.example', sigalgs: ecdsa });
      assert.equal(unknown.cert.subjectaltname, 'DNS:mx.example.org');
      assert.equal(unknown.cert.asn1Curve, 'prime256v1');
    });

    it('exact names and a one-label wildcard select the other certificates', async () => {
      const o = await nodeClient(server.port, 'implicit', { servername: 'other.example.net', ca: rsa.ca.pem });
      assert.match(o.cert.subjectaltname ?? '', /other\.example\.net/);
      const w = await nodeClient(server.port, 'implicit', { servername: 'a.wild.example.net' });
      assert.match(w.cert.subjectaltname ?? '', /\*\.wild\.example\.net/);
      const deep = await nodeClient(server.port, 'implicit', { servername: 'a.b.wild.example.net' });
      assert.equal(deep.cert.subjectaltname, 'DNS:mx.example.org', 'a wildcard covers one label only');
      const e = await nodeClient(server.port, 'implicit', { servername: 'EC.example.com' });
      assert.equal(e.cert.subjectaltname, 'DNS:ec.example.com');
      assert.equal(e.cert.asn1Curve, 'prime256v1');
    });

    it('openssl s_client -servername sees the matching certificate subject and SNI is reported', async () => {
      const n = server.outcomes.length;
      const r = await sClient(server.port, ['-servername', 'other.example.net', '-CAfile', rsa.ca.cert, '-verify_hostname', 'other.example.net', '-verify_return_error']);
      assert.match(r.subject ?? '', /CN ?= ?other\.example\.net/);
      assert.match(r.out, /Verification: OK/);
      assert.equal((await server.outcome(n)).info?.sni, 'other.example.net');
      const e = await sClient(server.port, ['-servername', 'ec.example.com']);
      assert.match(e.subject ?? '', /CN ?= ?ec\.example\.com/);
      assert.match(e.peerSignature ?? '', /ECDSA|ecdsa/);
    });

    it('a session resumes after SNI switched the context', async () => {
      const first = await nodeClient(server.port, 'implicit', { servername: 'other.example.net', version: 'TLSv1.3' });
      const second = await nodeClient(server.port, 'implicit', { servername: 'other.example.net', version: 'TLSv1.3', session: first.session });
      assert.equal(second.reused, true);
    });
  });

  describe('failures', () => {
    it('min_version TLSv1.3 refuses a TLS 1.2 client with a TlsHandshakeError carrying OpenSSL reason', async () => {
      const { server } = await setup(tlsConfig([rsa], { min_version: 'TLSv1.3' }), 'starttls');
      await assert.rejects(nodeClient(server.port, 'starttls', { version: 'TLSv1.2' }));
      const o = await server.outcome(0);
      assert.ok(o.error instanceof TlsHandshakeError);
      assert.equal(o.error.code, 'TLS_HANDSHAKE');
      assert.equal(o.error.reason, 'unsupported protocol');
      const ok = await nodeClient(server.port, 'starttls', { version: 'TLSv1.3' });
      assert.equal(ok.protocol, 'TLSv1.3');
    });

    it('garbage instead of a ClientHello: TlsHandshakeError, socket closed, server keeps working', async () => {
      const { server } = await setup(tlsConfig([rsa]), 'implicit');
      for (const junk of [Buffer.from('EHLO me\r\n'), Buffer.from('GET / HTTP/1.0\r\n\r\n'), Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x20]), Buffer.alloc(32, 0xff)])]) {
        const c = net.connect(server.port, '127.0.0.1');
        c.on('error', () => undefined);
        c.resume();
        c.write(junk);
        await new Promise((r) => c.once('close', r));
      }
      const reasons = await Promise.all([0, 1, 2].map(async (i) => (await server.outcome(i)).error?.reason));
      assert.equal(reasons[0], 'wrong version number');
      assert.equal(reasons[1], 'http request');
      assert.equal(reasons[2], 'unexpected message');
      assert.ok(reasons.every((r) => typeof r === 'string' && r.length > 0), JSON.stringify(reasons));
      const ok = await nodeClient(server.port, 'implicit');
      assert.equal(ok.protocol, 'TLSv1.3');
    });

    it('plaintext pipelined after STARTTLS goes to TLS and fails the handshake (never answered)', async () => {
      const { server } = await setup(tlsConfig([rsa]), 'starttls');
      const c = net.connect(server.port, '127.0.0.1');
      c.on('error', () => undefined);
      let got = '';
      c.on('data', (d: Buffer) => (got += d.toString('latin1')));
      await waitReply(c, '220');
      c.write('EHLO x\r\n');
      await waitReply(c, '250');
      c.write('STARTTLS\r\nNOOP\r\n');
      await new Promise((r) => c.once('close', r));
      const o = await server.outcome(0);
      assert.equal(o.error?.reason, 'wrong version number');
      assert.doesNotMatch(got, /250 ok/);
    });

    it('bytes read before accept() (e.g. after a PROXY header) are passed as head and the handshake completes', async () => {
      const logger = testLogger();
      const term = await TlsTerminator.create(tlsConfig([rsa, other]), { logger });
      const infos: TlsInfo[] = [];
      const srv = net.createServer((raw) => {
        raw.on('error', () => undefined);
        onLines(
          raw,
          () => {
            raw.pause();
            return 'stop';
          },
          (rest) =>
            void term.accept(raw, { head: rest, timeoutMs: 3000 }).then(({ socket, info }) => {
              infos.push(info);
              smtpOverTls(socket);
              socket.write('220 x ESMTP\r\n');
            }),
        );
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise((r) => srv.close(r)), () => term.close());
      const port = (srv.address() as net.AddressInfo).port;
      // The PROXY line and the ClientHello leave in one write: the client speaks TLS into an
      // in-memory pipe whose first chunk (the ClientHello) is glued to the PROXY line.
      const [mine, theirs] = duplexPair();
      const raw = net.connect(port, '127.0.0.1');
      raw.on('error', () => undefined);
      let first = true;
      theirs.on('data', (d: Buffer) => {
        raw.write(first ? Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 1234 465\r\n'), d]) : d);
        first = false;
      });
      raw.on('data', (d: Buffer) => theirs.write(d));
      const s = tls.connect({ socket: mine, servername: 'other.example.net', rejectUnauthorized: false });
      await new Promise<void>((resolve, reject) => {
        s.once('secureConnect', resolve);
        s.once('error', reject);
      });
      assert.match(s.getPeerCertificate().subjectaltname ?? '', /other\.example\.net/);
      await waitReply(s, '220');
      s.destroy();
      raw.destroy();
      assert.equal(infos[0]?.sni, 'other.example.net');
    });

    it('a client that says nothing times out with reason "timeout"; one that leaves gets "connection closed"', async () => {
      const { server } = await setup(tlsConfig([rsa]), 'implicit', { timeoutMs: 300 });
      const c = net.connect(server.port, '127.0.0.1');
      c.on('error', () => undefined);
      c.resume();
      const closed = new Promise((r) => c.once('close', r));
      assert.equal((await server.outcome(0)).error?.reason, 'timeout');
      await closed;
      const d = net.connect(server.port, '127.0.0.1');
      await new Promise((r) => d.once('connect', r));
      d.end();
      assert.equal((await server.outcome(1)).error?.reason, 'connection closed');
    });

    it('a client that sends its ClientHello and closes its side gets "connection closed" at once, not the timeout (half-open listener)', async () => {
      // 15 s: before the fix the handshake waited for it (the outcome wait gives up after 10 s).
      const { server } = await setup(tlsConfig([rsa]), 'implicit', { timeoutMs: 15_000 });
      const hello = await realClientHello();
      const c = net.connect(server.port, '127.0.0.1');
      c.on('error', () => undefined);
      c.resume();
      await new Promise((r) => c.once('connect', r));
      c.end(hello);
      assert.equal((await server.outcome(0)).error?.reason, 'connection closed');
      c.destroy();
    });
  });

  describe('ticket keys', () => {
    it('across rotations (rotate 1 s, lifetime 10 s) old tickets still resume, TLS 1.2 and 1.3; the file is 0600 and rotates', async () => {
      const file = path.join(pki.dir, 'rot', 'ticket-keys.json');
      const { server, term } = await setup(tlsConfig([ec], { ticket_keys: { file, rotate: 1000, lifetime: 10_000 } }), 'implicit');
      assert.equal(term.ticketMode, 'callback');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      const firstKeys = JSON.parse(await readFile(file, 'utf8')) as { keys: { key: string }[] };
      const s12 = await nodeClient(server.port, 'implicit', { version: 'TLSv1.2' });
      const s13 = await nodeClient(server.port, 'implicit', { version: 'TLSv1.3' });
      await new Promise((r) => setTimeout(r, 2600));
      const laterKeys = JSON.parse(await readFile(file, 'utf8')) as { keys: { key: string; active_from: string }[] };
      const active = laterKeys.keys.filter((k) => Date.parse(k.active_from) <= Date.now()).at(-1)!;
      assert.ok(!firstKeys.keys.slice(0, 1).some((k) => k.key === active.key), 'the encrypting key changed');
      const r12 = await nodeClient(server.port, 'implicit', { version: 'TLSv1.2', session: s12.session });
      const r13 = await nodeClient(server.port, 'implicit', { version: 'TLSv1.3', session: s13.session });
      assert.equal(r12.reused, true, 'TLS 1.2 ticket from two rotations ago');
      assert.equal(r13.reused, true, 'TLS 1.3 ticket from two rotations ago');
      assert.ok(r13.session, 'an old-key TLS 1.3 ticket is renewed under the current key');
      const s = await sClient(server.port, ['-tls1_3', '-sess_out', path.join(pki.dir, 'rot-s')]);
      await new Promise((r) => setTimeout(r, 1300));
      const t = await sClient(server.port, ['-tls1_3', '-sess_in', path.join(pki.dir, 'rot-s')]);
      assert.equal(s.reused, false);
      assert.equal(t.reused, true, t.out);
    });

    it('tickets survive a restart with the same key file, not without one', async () => {
      const file = path.join(pki.dir, 'restart', 'keys.json');
      const cfg = tlsConfig([rsa], { ticket_keys: { file, rotate: 3600_000, lifetime: 7200_000 } });
      const a = await setup(cfg, 'starttls');
      const first = await nodeClient(a.server.port, 'starttls', { version: 'TLSv1.3' });
      const first12 = await nodeClient(a.server.port, 'starttls', { version: 'TLSv1.2' });
      await a.server.close();
      a.term.close();
      const b = await setup(cfg, 'starttls');
      assert.equal((await nodeClient(b.server.port, 'starttls', { version: 'TLSv1.3', session: first.session })).reused, true);
      assert.equal((await nodeClient(b.server.port, 'starttls', { version: 'TLSv1.2', session: first12.session })).reused, true);
      const c = await setup(tlsConfig([rsa]), 'starttls');
      assert.equal((await nodeClient(c.server.port, 'starttls', { version: 'TLSv1.3', session: first.session })).reused, false);
    });

    it('fallback without the callback: one key at a time, so a rotation costs a full handshake (logged)', async () => {
      const file = path.join(pki.dir, 'fallback', 'keys.json');
      const { server, term, logger } = await setup(tlsConfig([rsa], { ticket_keys: { file, rotate: 1000, lifetime: 10_000 } }), 'implicit', {
        ticketKeyCallback: 'off',
      });
      assert.equal(term.ticketMode, 'single-key');
      const first = await nodeClient(server.port, 'implicit', { version: 'TLSv1.3' });
      assert.equal((await nodeClient(server.port, 'implicit', { version: 'TLSv1.3', session: first.session })).reused, true);
      await new Promise((r) => setTimeout(r, 2200));
      assert.equal((await nodeClient(server.port, 'implicit', { version: 'TLSv1.3', session: first.session })).reused, false);
      assert.equal(logger.lines.filter((l) => l.level === 'warn' && /full handshake/.test(l.msg ?? '')).length, 0, 'forced off is not a warning');
    });

    it('refuses a world-readable key file with a clear error', async () => {
      const file = path.join(pki.dir, 'open-keys.json');
      await writeFile(file, '{}');
      await chmod(file, 0o644);
      await assert.rejects(TlsTerminator.create(tlsConfig([rsa], { ticket_keys: { file, rotate: 3600_000, lifetime: 7200_000 } }), { logger: testLogger() }), (err: unknown) => {
        assert.ok(err instanceof TlsConfigError);
        assert.equal(err.code, 'TLS_TICKET_KEYS');
        assert.match(err.message, /644.*chmod 600/);
        return true;
      });
    });

    it('session_tickets: false sends no tickets; TLS 1.2 still resumes from the cache, TLS 1.3 does not', async () => {
      const { server, term } = await setup(tlsConfig([rsa], { session_tickets: false }), 'implicit');
      assert.equal(term.ticketMode, 'off');
      const sess = path.join(pki.dir, 'noticket-12');
      const a = await sClient(server.port, ['-tls1_2', '-sess_out', sess]);
      assert.doesNotMatch(a.out, /TLS session ticket:/);
      const b = await sClient(server.port, ['-tls1_2', '-sess_in', sess]);
      assert.equal(b.reused, true, b.out);
      const first = await nodeClient(server.port, 'implicit', { version: 'TLSv1.3' });
      assert.equal((await nodeClient(server.port, 'implicit', { version: 'TLSv1.3', session: first.session })).reused, false);
    });
  });

  describe('OCSP stapling', () => {
    it('staples the DER file (openssl sees a good response), per certificate, and re-reads it when it changes', async () => {
      const ocspRsa = await pki.ocsp(rsa);
      const ocspOther = await pki.ocsp(other);
      const live = path.join(pki.dir, 'live-ocsp.der');
      await copyFile(ocspRsa, live);
      const { server } = await setup(tlsConfig([{ leaf: rsa, ocsp: live }, { leaf: other, ocsp: ocspOther }, ec]), 'starttls', { ocspPollMs: 50 });
      // mx.example.org is served by RSA + ECDSA (one context): no staple there; without SNI the default group is the same.
      const dual = await sClient(server.port, ['-starttls', 'smtp', '-status', '-servername', 'mx.example.org']);
      assert.match(dual.out, /OCSP response: no response sent/);
      for (const flag of ['-tls1_2', '-tls1_3']) {
        const r = await sClient(server.port, ['-starttls', 'smtp', flag, '-status', '-servername', 'other.example.net']);
        assert.match(r.out, /OCSP Response Status: successful/, r.out);
        assert.match(r.out, /Cert Status: good/);
      }
      const n = await nodeClient(server.port, 'starttls', { servername: 'other.example.net', requestOCSP: true });
      assert.deepEqual(n.ocsp, await readFile(ocspOther));
    });

    it('staples for the default certificate without SNI, follows file changes, and not when expired', async () => {
      const live = path.join(pki.dir, 'live-ocsp-2.der');
      const v1 = await pki.ocsp(other);
      await copyFile(v1, live);
      const { server } = await setup(tlsConfig([{ leaf: other, ocsp: live }, ecOnly]), 'implicit', { ocspPollMs: 50 });
      const a = await nodeClient(server.port, 'implicit', { requestOCSP: true });
      assert.deepEqual(a.ocsp, await readFile(v1));
      const v2 = await pki.ocsp(other, { minutes: 30 });
      await new Promise((r) => setTimeout(r, 1100)); // a new mtime second
      await copyFile(v2, live);
      await new Promise((r) => setTimeout(r, 400));
      const b = await nodeClient(server.port, 'implicit', { requestOCSP: true });
      assert.deepEqual(b.ocsp, await readFile(v2));
      assert.notDeepEqual(b.ocsp, a.ocsp);
      await writeFile(live, 'not DER');
      await new Promise((r) => setTimeout(r, 400));
      const c = await nodeClient(server.port, 'implicit', { requestOCSP: true });
      assert.equal(c.ocsp, null);
    });
  });

  describe('reload', () => {
    it('switches certificates, keeps tickets and cache; a broken certificate is refused and the old state stays', async () => {
      const file = path.join(pki.dir, 'reload', 'keys.json');
      const cfg = tlsConfig([rsa], { ticket_keys: { file, rotate: 3600_000, lifetime: 7200_000 } });
      const { server, term } = await setup(cfg, 'implicit');
      const first = await nodeClient(server.port, 'implicit', { version: 'TLSv1.3' });
      assert.equal(first.cert.subjectaltname, 'DNS:mx.example.org');
      await term.reload({ ...cfg, certificates: [{ cert: other.cert, key: other.key }] });
      const fresh = await nodeClient(server.port, 'implicit', { version: 'TLSv1.3' });
      assert.match(fresh.cert.subjectaltname ?? '', /other\.example\.net/);
      assert.equal((await nodeClient(server.port, 'implicit', { version: 'TLSv1.3', session: first.session })).reused, true);
      await assert.rejects(term.reload({ ...cfg, certificates: [{ cert: rsa.cert, key: other.key }] }), (err: unknown) => {
        assert.ok(err instanceof TlsConfigError);
        assert.equal(err.code, 'TLS_CERTIFICATE');
        return true;
      });
      const still = await nodeClient(server.port, 'implicit');
      assert.match(still.cert.subjectaltname ?? '', /other\.example\.net/);
    });
  });
});
