// The XCLIENT handshake when the server's capabilities are already known (from the health
// check or the last session): XCLIENT straight after the greeting, no EHLO of ours first,
// and the EHLO as the client only after XCLIENT's reply (never pipelined: Postfix flags
// XCLIENT followed by anything in the same group). A refusal of that shortcut falls back
// to the full handshake on a new connection. Against a raw-socket backend that records
// what arrived when, real Postfix 3.7 and Postfix's smtp-sink.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import { handshake, type BackendClient, type HandshakeOptions } from '../../src/backend/handshake.js';
import { BackendError } from '../../src/backend/errors.js';
import type { HostPort } from '../../src/config/types.js';
import { parseEhlo } from '../../src/smtp/ehlo.js';
import { BackendTls } from '../../src/tls/index.js';
import { freePort } from '../helpers/net.js';
import { postfixAvailable, startPostfix } from '../helpers/postfix.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

/** One command as the raw backend saw it. */
interface Seen {
  line: string;
  /** Which data event of its connection carried it: equal numbers = one segment. */
  chunk: number;
  /** Commands of this connection still unanswered when it arrived (0 = not pipelined). */
  pending: number;
}

interface RawOptions {
  /** The XCLIENT line of our EHLO reply (attribute names), or null to offer none. */
  xclient?: string | null;
  /** The reply to XCLIENT; `ehloSeen`: this connection has had an EHLO. */
  onXclient?: (ehloSeen: boolean) => string;
  /** Hold every XCLIENT reply this long, so a pipelined EHLO would arrive before it. */
  xclientDelayMs?: number;
}

interface RawBackend {
  port: number;
  server: HostPort;
  /** Commands per accepted connection, in order. */
  conns: Seen[][];
  /** Connections that carried `verb` (e.g. 'MAIL'), in accept order. */
  with(verb: string): Seen[][];
  close(): Promise<void>;
}

/**
 * A small SMTP server on a real socket: 220, EHLO (PIPELINING, XCLIENT), XCLIENT, MAIL,
 * RCPT, DATA, QUIT. Replies strictly in order, one command at a time, like smtpd.
 */
async function rawBackend(opts: RawOptions = {}): Promise<RawBackend> {
  const conns: Seen[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const seen: Seen[] = [];
    conns.push(seen);
    serve(s, seen, opts);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    server: { host: '127.0.0.1', port, text: `127.0.0.1:${port}` },
    conns,
    with: (verb) => conns.filter((c) => c.some((x) => x.line.toUpperCase().startsWith(verb))),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

function serve(s: net.Socket, seen: Seen[], opts: RawOptions): void {
  const xclient = opts.xclient === undefined ? 'NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT' : opts.xclient;
  let buf = '';
  let chunk = 0;
  let answered = 0;
  let inData = false;
  let ehloSeen = false;
  const queue: string[] = [];
  let busy = false;
  const reply = async (line: string): Promise<string | null> => {
    const verb = line.split(' ')[0]!.toUpperCase();
    if (verb === 'PROXY') return null; // a PROXY v1 header: no reply (proxy-protocol.txt §2.1)
    if (verb === 'EHLO') {
      ehloSeen = true;
      return ['250-raw.test', '250-PIPELINING', ...(xclient === null ? [] : [`250-XCLIENT ${xclient}`]), '250 8BITMIME'].join('\r\n') + '\r\n';
    }
    if (verb === 'XCLIENT') {
      if (opts.xclientDelayMs) await new Promise((r) => setTimeout(r, opts.xclientDelayMs));
      return (opts.onXclient ? opts.onXclient(ehloSeen) : '220 raw.test ESMTP') + '\r\n';
    }
    if (verb === 'DATA') {
      inData = true;
      return '354 go ahead\r\n';
    }
    if (verb === 'QUIT') return '221 bye\r\n';
    return '250 ok\r\n';
  };
  const drain = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    let line: string | undefined;
    while ((line = queue.shift()) !== undefined) {
      const r = await reply(line);
      answered++;
      if (r !== null && !s.destroyed) s.write(r);
      if (line.toUpperCase() === 'QUIT') s.end();
    }
    busy = false;
  };
  s.write('220 raw.test ESMTP\r\n');
  s.on('data', (d: Buffer) => {
    chunk++;
    buf += d.toString('latin1');
    let i;
    while ((i = buf.indexOf('\r\n')) !== -1) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (inData) {
        if (line === '.') {
          inData = false;
          s.write('250 2.0.0 queued\r\n');
        }
        continue;
      }
      seen.push({ line, chunk, pending: seen.length - answered });
      if (line.startsWith('PROXY ')) answered++; // never answered, so never pending
      else queue.push(line);
    }
    void drain();
  });
}

/** Polls until `cond` holds (the backend's view lags the client's by a few ms). */
async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function postern(backendPort: number): Promise<TestPostern> {
  const p = await startPostern(basicYaml([`127.0.0.1:${backendPort}`]));
  const up = await p.waitFor((x) => x.event === 'backend');
  assert.equal(up.state, 'up', String(up.reason));
  assert.ok(p.postern.pool.servers[0]!.caps?.has('XCLIENT'), 'the health check made the capabilities known');
  return p;
}

const verbs = (c: Seen[]) => c.map((x) => x.line.split(' ')[0]!.toUpperCase());

describe('XCLIENT first when the capabilities are known (raw-socket backend)', () => {
  it('no EHLO precedes XCLIENT, and the EHLO as the client arrives only after the XCLIENT reply', async () => {
    const b = await rawBackend({ xclientDelayMs: 50 });
    const p = await postern(b.port);
    try {
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
      const port = c.socket.localPort!;
      assert.equal((await sendMessage(c, { helo: 'fast.test' })).code, 250);
      await until(() => b.with('MAIL').length === 1, 'the session on the backend');
      const s = b.with('MAIL')[0]!;
      assert.deepEqual(verbs(s).slice(0, 3), ['XCLIENT', 'EHLO', 'MAIL'], JSON.stringify(s));
      assert.match(s[0]!.line, new RegExp(`^XCLIENT .*ADDR=127\\.0\\.0\\.2 PORT=${port}\\b`));
      assert.equal(s[1]!.line, 'EHLO fast.test');
      assert.equal(s[1]!.pending, 0, 'EHLO was sent after XCLIENT was answered, not pipelined');
      assert.notEqual(s[1]!.chunk, s[0]!.chunk, 'XCLIENT and EHLO in separate segments');
      const rec = await p.session();
      assert.deepEqual(rec.anomalies, []);
    } finally {
      await p.stop();
      await b.close();
    }
  });

  it('a stale known (XCLIENT refused with 550) falls back to the full handshake on a new connection; the session delivers', async () => {
    // Refuses XCLIENT before EHLO, takes it after: the shortcut fails, the full path works.
    const b = await rawBackend({ onXclient: (ehloSeen) => (ehloSeen ? '220 raw.test ESMTP' : '550 5.7.0 Error: insufficient authorization') });
    const p = await postern(b.port);
    try {
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.3' });
      assert.equal((await sendMessage(c, { helo: 'stale.test' })).code, 250);
      await until(() => b.with('MAIL').length === 1, 'the session on the backend');
      const tried = b.with('XCLIENT');
      assert.equal(tried.length, 2, JSON.stringify(tried));
      assert.deepEqual(verbs(tried[0]!), ['XCLIENT', 'QUIT'], 'the refused connection is closed politely, never reused');
      assert.deepEqual(verbs(tried[1]!).slice(0, 4), ['EHLO', 'XCLIENT', 'EHLO', 'MAIL'], 'then the full handshake on a new connection');
      assert.equal(tried[1]![0]!.line, 'EHLO postern.test');
      assert.equal(tried[1]![2]!.line, 'EHLO stale.test');

      // The server has shown it wants EHLO first: the next session does not try the shortcut again.
      const c2 = await SmtpClient.connect(p.port, { localAddress: '127.0.0.4' });
      assert.equal((await sendMessage(c2, { helo: 'stale2.test' })).code, 250);
      await until(() => b.with('MAIL').length === 2, 'the second session on the backend');
      const after = b.with('XCLIENT').slice(2);
      assert.equal(after.length, 1, JSON.stringify(after));
      assert.deepEqual(verbs(after[0]!).slice(0, 4), ['EHLO', 'XCLIENT', 'EHLO', 'MAIL']);
    } finally {
      await p.stop();
      await b.close();
    }
  });
});

describe('handshake() with known capabilities (raw-socket backend)', () => {
  const client: BackendClient = {
    address: '127.0.0.5',
    port: 40001,
    destAddress: '127.0.0.1',
    destPort: 25,
    helo: 'client.test',
    proto: 'ESMTP',
    name: null,
    login: null,
  };
  const known = parseEhlo({ code: 250, lines: ['raw.test', 'PIPELINING', 'XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT'], raw: Buffer.alloc(0) });
  const opts = (extra: Partial<HandshakeOptions> = {}): HandshakeOptions => ({
    identity: 'xclient',
    hostname: 'postern.test',
    connectTimeout: 2000,
    replyTimeout: 2000,
    known,
    ...extra,
  });

  it('without known: the full handshake, as before (EHLO, XCLIENT, EHLO)', async () => {
    const b = await rawBackend();
    try {
      const bound = await handshake(b.server, client, opts({ known: null }));
      bound.conn.quit();
      assert.deepEqual(verbs(b.conns[0]!).slice(0, 3), ['EHLO', 'XCLIENT', 'EHLO']);
    } finally {
      await b.close();
    }
  });

  it('returns the capabilities of the EHLO as the client', async () => {
    const b = await rawBackend();
    try {
      const bound = await handshake(b.server, client, opts());
      bound.conn.quit();
      assert.ok(bound.caps.has('8BITMIME'));
      assert.deepEqual(verbs(b.conns[0]!).slice(0, 2), ['XCLIENT', 'EHLO']);
      assert.equal(b.conns[0]![1]!.line, 'EHLO client.test');
    } finally {
      await b.close();
    }
  });

  it('a 4xx to the early XCLIENT is a failure of this server (BACKEND_REPLY), with no second connection', async () => {
    const b = await rawBackend({ onXclient: () => '421 4.3.2 shutting down' });
    try {
      await assert.rejects(handshake(b.server, client, opts()), (e: unknown) => {
        assert.ok(e instanceof BackendError);
        assert.equal(e.code, 'BACKEND_REPLY');
        assert.match(e.message, /^XCLIENT refused: 421 /);
        return true;
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(b.conns.length, 1);
    } finally {
      await b.close();
    }
  });

  it('a server that no longer offers XCLIENT: the fallback finds out, BACKEND_NO_XCLIENT as before', async () => {
    const b = await rawBackend({ xclient: null, onXclient: () => '550 5.7.0 Error: insufficient authorization' });
    try {
      await assert.rejects(handshake(b.server, client, opts()), (e: unknown) => e instanceof BackendError && e.code === 'BACKEND_NO_XCLIENT' && e.unusable);
      assert.equal(b.conns.length, 2, 'one try of the shortcut, one full handshake');
      assert.deepEqual(verbs(b.conns[1]!)[0], 'EHLO');
    } finally {
      await b.close();
    }
  });

  it('backend STARTTLS on: the order stays EHLO, (STARTTLS,) XCLIENT, EHLO even with known', async () => {
    const b = await rawBackend(); // offers no STARTTLS, so `optional` goes on in plaintext
    try {
      const tls = { mode: 'optional' as const, client: new BackendTls({ verify: false, servername: null, ca: null }) };
      const bound = await handshake(b.server, client, opts({ tls }));
      bound.conn.quit();
      assert.deepEqual(verbs(b.conns[0]!).slice(0, 3), ['EHLO', 'XCLIENT', 'EHLO']);
    } finally {
      await b.close();
    }
  });

  it('a long XCLIENT split over several lines: each answered before the next, then EHLO', async () => {
    const b = await rawBackend({ xclientDelayMs: 20 });
    try {
      const long = { ...client, helo: 'h'.repeat(250), login: 'l'.repeat(250) };
      const bound = await handshake(b.server, long, opts());
      bound.conn.quit();
      const s = b.conns[0]!;
      const n = verbs(s).indexOf('EHLO');
      assert.ok(n >= 2, JSON.stringify(s));
      assert.ok(verbs(s).slice(0, n).every((v) => v === 'XCLIENT'), 'no EHLO before the XCLIENT lines');
      assert.match(s[n - 1]!.line, /ADDR=127\.0\.0\.5 PORT=40001/, 'ADDR and PORT in the last line');
      assert.ok(s.slice(0, n + 1).every((x) => x.pending === 0), 'nothing pipelined');
    } finally {
      await b.close();
    }
  });

  it('identity proxy-v1 with known: the header, then a single EHLO as the client', async () => {
    const b = await rawBackend();
    try {
      const bound = await handshake(b.server, client, opts({ identity: 'proxy-v1' }));
      bound.conn.quit();
      assert.deepEqual(verbs(b.conns[0]!).slice(0, 2), ['PROXY', 'EHLO']);
      assert.equal(b.conns[0]![1]!.line, 'EHLO client.test');
    } finally {
      await b.close();
    }
  });

  it('identity none with known: a single EHLO as the client', async () => {
    const b = await rawBackend();
    try {
      const bound = await handshake(b.server, client, opts({ identity: 'none' }));
      bound.conn.quit();
      await until(() => verbs(b.conns[0]!).includes('QUIT'), 'QUIT');
      assert.deepEqual(verbs(b.conns[0]!), ['EHLO', 'QUIT']);
    } finally {
      await b.close();
    }
  });
});

const noPostfix = !postfixAvailable() && 'postfix is not installed (apt-get install postfix), or not root';

describe('XCLIENT first against real Postfix 3.7', { skip: noPostfix }, () => {
  it('sessions deliver, Postfix names the real client, and sees one EHLO per session (the client’s)', async () => {
    // forbid_unauth_pipelining (the default from 3.9) hangs up on a pipelined XCLIENT+EHLO.
    const pf = await startPostfix({ extraMain: { smtpd_forbid_unauth_pipelining: 'yes' } });
    const p = await postern(pf.port);
    try {
      for (const local of ['127.0.0.2', '127.0.0.3']) {
        const c = await SmtpClient.connect(p.port, { localAddress: local });
        const port = c.socket.localPort!;
        assert.equal((await sendMessage(c, { helo: `pf-${local}.test` })).code, 250);
        const addr = `unknown\\[${local.replace(/\./g, '\\.')}\\]:${port}`;
        await pf.waitForLog(new RegExp(`client=${addr}\\b`));
        // Postfix 3.7 counts a successful XCLIENT as 0/1 (it longjmps back to the greeting).
        const m = await pf.waitForLog(new RegExp(`disconnect from ${addr} ehlo=(\\d+) xclient=(\\S+) mail=1 rcpt=1 data=1 quit=1\\b`));
        assert.equal(m[1], '1', `one EHLO on the session's connection: ${m[0]}`);
        assert.equal(m[2], '0/1', m[0]);
      }
      const log = pf.readLog();
      assert.doesNotMatch(log, /improper command pipelining/);
      assert.doesNotMatch(log, /protocol synchronization/);
    } finally {
      await p.stop();
      await pf.stop();
    }
  });
});

const noSink = (!existsSync('/usr/sbin/smtp-sink') || process.getuid?.() !== 0) && 'smtp-sink is not installed, or not root';

describe("XCLIENT first against Postfix's smtp-sink", { skip: noSink }, () => {
  it('the session connection starts with XCLIENT (ADDR, PORT, and the NAME HELO it lists), then the client EHLO', async () => {
    const port = await freePort();
    // -v: smtp-sink logs every command it reads, per connection, on stderr.
    const sink = spawn('/usr/sbin/smtp-sink', ['-v', '-u', 'nobody', `127.0.0.1:${port}`, '100'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    sink.stderr.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await until(() => log.includes('trying...'), 'smtp-sink to start');
      await new Promise((r) => setTimeout(r, 100));
      const p = await postern(port);
      try {
        const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.6' });
        const cport = c.socket.localPort!;
        assert.equal((await sendMessage(c, { helo: 'sink.test' })).code, 250);
        await until(() => /MAIL FROM:<a@example\.org>/.test(log), 'the session in smtp-sink’s log');
        const sessions = log.split(/smtp-sink: connect \(/).filter((x) => x.includes('MAIL FROM'));
        assert.equal(sessions.length, 1);
        const cmds = [...sessions[0]!.matchAll(/smtp-sink: ([A-Z]+(?: .*)?)$/gm)].map((m) => m[1]!).filter((l) => /^(XCLIENT|EHLO|MAIL|QUIT)\b/.test(l));
        assert.equal(cmds[0], `XCLIENT HELO=sink.test ADDR=127.0.0.6 PORT=${cport} NAME=[UNAVAILABLE]`);
        assert.equal(cmds[1], 'EHLO sink.test');
        assert.equal(cmds[2], 'MAIL FROM:<a@example.org>');
      } finally {
        await p.stop();
      }
    } finally {
      sink.kill();
    }
  });
});
