// Interop with real Postfix 3.7 through XCLIENT: Postfix's own log must name the real
// client (address and port), for IPv4 clients on 127.0.0.x and for ::1.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { clientLines, fromLines, ipv6LoopbackAvailable, postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { freePort } from '../helpers/net.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';
import { closedPort, startRefuser } from '../helpers/tcp-cut.js';

// CI installs Postfix and swaks (.ci/run); a developer machine without them skips, saying why.
const skip = !postfixAvailable() ? 'postfix is not installed (apt-get install postfix), or not root' : !swaksAvailable() ? 'swaks is not installed' : false;

describe('Postern in front of real Postfix (identity xclient)', { skip }, () => {
  let pf: PostfixInstance;
  let p: TestPostern;
  let v6: boolean;
  let v6port = 0;

  before(async () => {
    v6 = await ipv6LoopbackAvailable();
    pf = await startPostfix({ ipv6: false, extraMain: { message_size_limit: String(40 * 1024 * 1024), smtputf8_enable: 'yes' } });
    const listeners = v6
      ? `listeners:\n  - name: smtp\n    listen: 127.0.0.1:0\n  - name: smtp6\n    listen: "[::1]:0"\n`
      : `listeners:\n  - name: smtp\n    listen: 127.0.0.1:0\n`;
    const yaml = basicYaml([`127.0.0.1:${pf.port}`], 'limits: { message_size: 30MB }\n').replace(/listeners:\n(?: {2}- name: smtp\n {4}listen: 127\.0\.0\.1:0\n)/, listeners);
    p = await startPostern(yaml);
    if (v6) v6port = p.postern.addresses().smtp6!.port;
  });
  after(async () => {
    await p?.stop();
    await pf?.stop();
  });

  it('Postfix logs the real IPv4 client address and port for clients on 127.0.0.x', async () => {
    for (const local of ['127.0.0.2', '127.0.0.3', '127.0.0.7']) {
      const c = await SmtpClient.connect(p.port, { localAddress: local });
      const port = c.socket.localPort!;
      const r = await sendMessage(c, { helo: `v4-${local}.test`, from: `from-${local}@example.org` });
      assert.equal(r.code, 250, r.lines.join(' '));
      await pf.waitForLog(new RegExp(`client=unknown\\[${local.replace(/\./g, '\\.')}\\]:${port}\\b`));
    }
    const clients = clientLines(pf.readLog()).map((l) => l.address);
    assert.ok(!clients.includes('127.0.0.1'), 'Postfix never sees the proxy as the client');
  });

  it('Postfix logs the real client for an IPv6 client on ::1', { skip: false }, async (t) => {
    if (!v6) return t.skip('no ::1 on this machine');
    const c = await SmtpClient.connect(v6port, { host: '::1' });
    const port = c.socket.localPort!;
    const r = await sendMessage(c, { helo: 'v6.test' });
    assert.equal(r.code, 250, r.lines.join(' '));
    await pf.waitForLog(new RegExp(`client=unknown\\[::1\\]:${port}\\b`));
  });

  it('relays swaks --pipeline with several recipients', async () => {
    const res = await swaks([
      '--server', `127.0.0.1:${p.port}`, '--local-interface', '127.0.0.8', '--pipeline',
      '--ehlo', 'swaks-pipe.test', '--from', 'pipe@example.org', '--to', 'r1@example.net,r2@example.net,r3@example.net',
    ]);
    assert.equal(res.code, 0, res.transcript);
    assert.match(res.transcript, /<- +250 2\.0\.0 Ok: queued/);
    const m = await pf.waitForLog(/: from=<pipe@example\.org>, size=\d+, nrcpt=(\d+)/);
    assert.equal(m[1], '3');
    await pf.waitForLog(/client=unknown\[127\.0\.0\.8\]:\d+/);
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'swaks-pipe.test');
    assert.deepEqual(rec.anomalies, []);
    assert.equal(rec.rcpts, 3);
  });

  it('relays BDAT chunks written by the test (CHUNKING passed through)', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.9' });
    await c.waitReplies(1);
    const ehlo = await c.cmd('EHLO bdat.test');
    assert.ok(ehlo.lines.includes('CHUNKING'), 'Postfix offers CHUNKING, so Postern does');
    await c.cmd('MAIL FROM:<bdat@example.org>');
    await c.cmd('RCPT TO:<b@example.net>');
    const part1 = 'Subject: chunked\r\n\r\nfirst part\r\n.\r\nnot a terminator in BDAT\r\n';
    const part2 = 'last part\r\n';
    const rs = await c.send(`BDAT ${Buffer.byteLength(part1)}\r\n${part1}BDAT ${Buffer.byteLength(part2)} LAST\r\n${part2}`, 2);
    assert.deepEqual(rs.map((r) => r.code), [250, 250]);
    await c.cmd('QUIT');
    await pf.waitForLog(/: from=<bdat@example\.org>, size=\d+, nrcpt=1/);
    const rec = await p.waitFor((x) => x.event === 'transaction' && x.from === 'bdat@example.org');
    assert.equal(rec.size, Buffer.byteLength(part1) + Buffer.byteLength(part2));
  });

  it('relays an 8-bit body with an SMTPUTF8 envelope', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    const ehlo = await c.cmd('EHLO utf8.test');
    assert.ok(ehlo.lines.includes('SMTPUTF8') && ehlo.lines.includes('8BITMIME'));
    assert.equal((await c.cmd('MAIL FROM:<jöran@exämple.org> SMTPUTF8 BODY=8BITMIME')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<dörte@exämple.net>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const body = Buffer.concat([Buffer.from('Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\n'), Buffer.from('Grüße aus Köln — ½ €\r\n', 'utf8'), Buffer.from([0xe9, 0x0d, 0x0a])]);
    const [r] = await c.send(Buffer.concat([body, Buffer.from('.\r\n')]));
    assert.equal(r!.code, 250, r!.lines.join(' '));
    await c.cmd('QUIT');
    await pf.waitForLog(/from=<jöran@exämple\.org>/);
  });

  it('relays a 20 MB message', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO big.test');
    await c.cmd('MAIL FROM:<big@example.org> SIZE=21000000');
    await c.cmd('RCPT TO:<b@example.net>');
    assert.equal((await c.cmd('DATA')).code, 354);
    const line = 'x'.repeat(998) + '\r\n';
    const body = Buffer.from('Subject: big\r\n\r\n' + line.repeat(21 * 1024));
    assert.ok(body.length > 20 * 1024 * 1024);
    const [r] = await c.send(Buffer.concat([body, Buffer.from('.\r\n')]), 1, 60_000);
    assert.equal(r!.code, 250, r!.lines.join(' '));
    await c.cmd('QUIT');
    const m = await pf.waitForLog(/: from=<big@example\.org>, size=(\d+)/);
    assert.ok(Number(m[1]) > 20 * 1024 * 1024);
    const tx = await p.waitFor((x) => x.event === 'transaction' && x.from === 'big@example.org');
    assert.equal(tx.size, body.length);
  });

  it('a client XCLIENT is refused and Postfix never sees the spoofed address', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.10' });
    await c.waitReplies(1);
    await c.cmd('EHLO spoof.test');
    assert.equal((await c.cmd('XCLIENT ADDR=192.0.2.66 PORT=666')).code, 550);
    const r = await sendMessage(c, { helo: 'spoof.test', from: 'spoof@example.org' });
    assert.equal(r.code, 250);
    await pf.waitForLog(/client=unknown\[127\.0\.0\.10\]:\d+/);
    assert.doesNotMatch(pf.readLog(), /192\.0\.2\.66/);
  });

  it('a backend smtpd killed mid-DATA gives the client 4xx, never 250', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO killed.test');
    await c.cmd('MAIL FROM:<killed@example.org>');
    await c.cmd('RCPT TO:<b@example.net>');
    assert.equal((await c.cmd('DATA')).code, 354);
    c.socket.write('Subject: doomed\r\n\r\n' + 'y'.repeat(2000) + '\r\n');
    await new Promise((r) => setTimeout(r, 200));
    execFileSync('pkill', ['-9', '-f', `smtpd -n 127.0.0.1:${pf.port} `]);
    await c.waitClose(10_000);
    const text = c.received.toString();
    const afterData = text.slice(text.lastIndexOf('354'));
    assert.match(afterData, /\r\n4\d\d /);
    assert.doesNotMatch(afterData, /\r\n250 /);
    assert.ok(!fromLines(pf.readLog()).some((l) => l.from === 'killed@example.org'));
  });
});

describe("Postfix's smtp-sink as an xclient backend", { skip: (!existsSync('/usr/sbin/smtp-sink') || !postfixAvailable()) && 'smtp-sink not installed' }, () => {
  it('lists only XCLIENT NAME HELO, yet takes ADDR and PORT (answering 250): sessions go through', async () => {
    const port = await freePort();
    const sinkProc = spawn('/usr/sbin/smtp-sink', ['-u', 'root', `127.0.0.1:${port}`, '100'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
    const p = await startPostern(basicYaml([`127.0.0.1:${port}`]));
    try {
      const up = await p.waitFor((x) => x.event === 'backend');
      assert.equal(up.state, 'up', String(up.reason));
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.12' });
      assert.equal((await sendMessage(c, { helo: 'smtp-sink.test' })).code, 250);
    } finally {
      await p.stop();
      sinkProc.kill();
    }
  });
});

describe('received_header with BDAT to real Postfix', { skip }, () => {
  it('the first BDAT chunk grows by the header and Postfix accepts the message', async () => {
    const pf = await startPostfix();
    const p = await startPostern(basicYaml([`127.0.0.1:${pf.port}`], 'received_header: true\n'));
    try {
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      await c.cmd('EHLO bdat-trace.test');
      await c.cmd('MAIL FROM:<bdat-trace@example.org>');
      await c.cmd('RCPT TO:<b@example.net>');
      const a = 'Subject: chunked\r\n\r\nfirst\r\n';
      const b = 'second\r\n';
      const rs = await c.send(`BDAT ${a.length}\r\n${a}BDAT ${b.length} LAST\r\n${b}`, 2);
      assert.deepEqual(rs.map((r) => r.code), [250, 250]);
      assert.equal((await c.cmd('NOOP')).code, 250, 'still in step with Postfix after the chunks');
      await c.cmd('QUIT');
      await pf.waitForLog(/: from=<bdat-trace@example\.org>, size=\d+, nrcpt=1/);
    } finally {
      await p.stop();
      await pf.stop();
    }
  });
});

describe('failover to real Postfix', { skip }, () => {
  it('a first server that refuses connections or greets 421 is skipped; Postfix gets the session', async () => {
    const pf = await startPostfix();
    const dead = await closedPort();
    const refuser = await startRefuser('421 4.3.2 Service not available');
    const p = await startPostern(
      basicYaml([`127.0.0.1:${dead}`, `127.0.0.1:${refuser.port}`, `127.0.0.1:${pf.port}`]).replace('identity: xclient', 'identity: xclient\n  strategy: round-robin'),
    );
    try {
      // Both bad servers fail between health checks, as in production: mark them live again.
      for (const s of p.postern.pool.servers) s.up = true;
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.11' });
      const port = c.socket.localPort!;
      const r = await sendMessage(c, { helo: 'failover.test' });
      assert.equal(r.code, 250);
      const m = await pf.waitForLog(new RegExp(`([0-9A-F]+): client=unknown\\[127\\.0\\.0\\.11\\]:${port}\\b`));
      const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'failover.test');
      // Postfix's queue id (`250 2.0.0 Ok: queued as ...`) joins the transaction record to its log.
      const tx = await p.waitFor((x) => x.event === 'transaction' && x.conn === rec.conn);
      assert.equal(tx.queue_id, m[1]);
      assert.deepEqual(tx.recipients, [{ address: 'b@example.net', code: 250, reply: (tx.recipients as { reply: string }[])[0]!.reply }]);
      const { local, handshake_ms, attempts, ...backend } = rec.backend as Record<string, unknown>;
      assert.deepEqual(backend, { address: `127.0.0.1:${pf.port}`, identity: 'xclient', pool: 'default' });
      // The two servers skipped are in the record, with where they failed (issue 21).
      assert.deepEqual(
        (attempts as { server: string; stage: string }[]).map((a) => [a.server, a.stage]),
        [
          [`127.0.0.1:${dead}`, 'connect'],
          [`127.0.0.1:${refuser.port}`, 'greeting'],
        ],
      );
      // Postern's own side of the connection, which Postfix logs as `connect from ...[127.0.0.1]:PORT`.
      assert.match(local as string, /^127\.0\.0\.1:\d+$/);
      assert.equal(typeof handshake_ms, 'number');
      // ... and Postfix's connect line names that same port: the session record joins its log.
      await pf.waitForLog(new RegExp(`connect from unknown\\[127\\.0\\.0\\.1\\]:${String(local).split(':')[1]}\\b`));
    } finally {
      await p.stop();
      await refuser.close();
      await pf.stop();
    }
  });

  it('a Postfix that does not authorize us for XCLIENT is marked down with the reason', async () => {
    const pf = await startPostfix({ xclientHosts: '192.0.2.1' });
    const p = await startPostern(basicYaml([`127.0.0.1:${pf.port}`]));
    try {
      const rec = await p.waitFor((x) => x.event === 'backend' && x.state === 'down');
      assert.match(String(rec.reason), /XCLIENT not offered/);
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      await c.cmd('EHLO anon.test');
      const m = await c.cmd('MAIL FROM:<a@example.org>');
      assert.equal(m.code, 451, 'never relays anonymously');
      await c.cmd('QUIT');
    } finally {
      await p.stop();
      await pf.stop();
    }
  });
});
