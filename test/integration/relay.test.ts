// The session state machine over real sockets: client -> Postern -> the built-in sink.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';
import { closedPort, startRefuser, startTcpCut } from '../helpers/tcp-cut.js';

const codes = (rs: { code: number }[]) => rs.map((r) => r.code);

describe('relay through the sink with XCLIENT', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true, keepBodies: true });
    p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { message_size: 1MB, timeouts: { command: 1s, data: 1s, greeting: 1s } }\n'));
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  it('tells the backend the real client address and port, and logs the session', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
    const clientPort = c.socket.localPort!;
    const greeting = (await c.waitReplies(1))[0]!;
    assert.equal(greeting.code, 220);
    assert.match(greeting.lines[0]!, /^postern\.test ESMTP/);
    const r = await sendMessage(c, { from: 'alice@example.org', to: ['bob@example.net'], helo: 'client.example' });
    assert.equal(r.code, 250);
    await c.waitClose();
    const m = (await sink.waitFor(1))[0]!;
    assert.deepEqual(m.client, { address: '127.0.0.2', port: clientPort });
    assert.equal(m.told, 'xclient');
    assert.equal(m.helo, 'client.example');
    const rec = await p.waitFor((x) => x.event === 'session' && (x.client as { port: number }).port === clientPort);
    assert.equal(rec.close, 'quit');
    assert.deepEqual(rec.anomalies, []);
    assert.equal(rec.transactions, 1);
    assert.equal(rec.rcpts, 1);
    assert.equal(rec.helo, 'client.example');
    const { local, handshake_ms, ...backend } = rec.backend as Record<string, unknown>;
    assert.deepEqual(backend, { address: `127.0.0.1:${sink.address().port}`, identity: 'xclient', pool: 'default' });
    assert.match(local as string, /^127\.0\.0\.1:\d+$/);
    assert.ok((handshake_ms as number) >= 0);
    assert.ok((rec.bytes_in as number) > 0 && (rec.bytes_out as number) > 0);
    const tx = await p.waitFor((x) => x.event === 'transaction' && x.conn === rec.conn);
    assert.equal(tx.from, 'alice@example.org');
    assert.equal(tx.rcpts, 1);
    assert.match(String(tx.reply), /^250 /);
  });

  it('answers the front phase itself and offers what the backend offers', async () => {
    const before = sink.messages.length;
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    const ehlo = await c.cmd('ehlo front.test');
    assert.equal(ehlo.code, 250);
    const keys = ehlo.lines.slice(1).map((l) => l.split(' ')[0]);
    for (const k of ['PIPELINING', 'SIZE', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES']) assert.ok(keys.includes(k), k);
    assert.ok(ehlo.lines.includes('SIZE 1048576'));
    assert.ok(!keys.includes('XCLIENT'), 'never offers XCLIENT to an untrusted client');
    assert.equal((await c.cmd('NOOP')).code, 250);
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('HELP')).code, 214);
    assert.equal((await c.cmd('VRFY bob')).code, 502);
    assert.equal((await c.cmd('EXPN list')).code, 502);
    assert.equal((await c.cmd('RCPT TO:<x@y>')).code, 503);
    assert.equal((await c.cmd('DATA')).code, 503);
    assert.equal((await c.cmd('FOO bar')).code, 500);
    assert.equal((await c.cmd('QUIT')).code, 221);
    await c.waitClose();
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'front.test');
    assert.equal(rec.backend, null, 'no backend connection for a session that never sent MAIL');
    assert.equal(sink.messages.length, before);
  });

  it('QUIT straight after the greeting: 221 from Postern, a clean close and one record, no backend', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.41' });
    await c.waitReplies(1);
    const bye = await c.cmd('QUIT');
    assert.equal(bye.code, 221);
    await c.waitClose();
    const rec = await p.waitFor((x) => x.event === 'session' && (x.client as { address?: string } | undefined)?.address === '127.0.0.41');
    assert.equal(rec.close, 'quit');
    assert.equal(rec.backend, null);
    assert.deepEqual(rec.anomalies, []);
  });

  it('forwards a pipelined group and returns replies in command order', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.3' });
    await c.waitReplies(1);
    await c.cmd('EHLO pipe.test');
    const rs = await c.send(
      'MAIL FROM:<p@example.org>\r\nRCPT TO:<r1@example.net>\r\nRCPT TO:<bad@example.net>\r\nRCPT TO:<r3@example.net>\r\nDATA\r\n',
      5,
    );
    assert.deepEqual(codes(rs), [250, 250, 250, 250, 354]);
    const end = await c.send('Subject: pipelined\r\n\r\nbody\r\n.\r\nMAIL FROM:<q@example.org>\r\nRCPT TO:<s@example.net>\r\nDATA\r\n', 4);
    assert.deepEqual(codes(end), [250, 250, 250, 354]);
    const end2 = await c.send('Subject: second\r\n\r\nbody 2\r\n.\r\nQUIT\r\n', 2);
    assert.deepEqual(codes(end2), [250, 221]);
    await c.waitClose();
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'pipe.test');
    assert.equal(rec.transactions, 2);
    assert.equal(rec.rcpts, 4);
    assert.deepEqual(rec.anomalies, []);
    const got = sink.messages.filter((m) => m.helo === 'pipe.test');
    assert.equal(got.length, 2);
    assert.deepEqual(got[0]!.rcpts, ['r1@example.net', 'bad@example.net', 'r3@example.net']);
  });

  it('relays an 8-bit body and an SMTPUTF8 envelope byte for byte', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO utf8.test');
    assert.equal((await c.cmd('MAIL FROM:<jöran@exämple.org> SMTPUTF8 BODY=8BITMIME')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const body = Buffer.concat([Buffer.from('Subject: 8bit\r\n\r\n'), Buffer.from([0xe9, 0xe8, 0xff, 0x80, 0x0d, 0x0a]), Buffer.from('..dot-stuffed line\r\n')]);
    const [r] = await c.send(Buffer.concat([body, Buffer.from('.\r\n')]));
    assert.equal(r!.code, 250);
    await c.cmd('QUIT');
    const m = sink.messages.find((x) => x.helo === 'utf8.test')!;
    assert.equal(m.from, 'jöran@exämple.org');
    assert.deepEqual(m.rcpts, ['δοκιμή@παράδειγμα.δοκιμή']);
    // The sink unstuffs the leading dot, as any MTA does.
    const expected = Buffer.concat([Buffer.from('Subject: 8bit\r\n\r\n'), Buffer.from([0xe9, 0xe8, 0xff, 0x80, 0x0d, 0x0a]), Buffer.from('.dot-stuffed line\r\n')]);
    assert.deepEqual(m.body, expected);
  });

  it('refuses a body with a bare LF (SMTP smuggling) and never lets the backend see it', async () => {
    const before = sink.messages.length;
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO smuggler.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<b@example.net>');
    assert.equal((await c.cmd('DATA')).code, 354);
    const [r] = await c.send(
      'Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n\r\nsmuggled\r\n.\r\n',
    );
    assert.equal(r!.code, 550);
    assert.match(r!.lines[0]!, /^5\.5\.2 /);
    // The session goes on, with a fresh backend connection.
    const r2 = await sendMessage(c, { helo: 'smuggler2.test', from: 'ok@example.org', to: ['fine@example.net'] }).catch((e: Error) => e);
    assert.ok(!(r2 instanceof Error));
    assert.equal(sink.messages.length, before + 1);
    assert.equal(sink.messages.at(-1)!.from, 'ok@example.org');
    assert.ok(!sink.messages.some((m) => m.from === 'evil@example.org'));
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'smuggler2.test');
    assert.deepEqual(rec.anomalies, ['bare_lf']);
    await p.waitFor((x) => x.event === 'anomaly' && x.kind === 'bare_lf' && x.conn === rec.conn);
  });

  it('refuses XCLIENT from a client and never forwards it', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.4' });
    await c.waitReplies(1);
    await c.cmd('EHLO spoof.test');
    const x = await c.cmd('XCLIENT ADDR=10.9.9.9 PORT=1');
    assert.equal(x.code, 550);
    assert.match(x.lines[0]!, /^5\.7\.0/);
    assert.equal((await c.cmd('PROXY TCP4 10.9.9.9 127.0.0.1 1 25')).code, 550);
    const r = await sendMessage(c, { helo: 'spoof.test' });
    assert.equal(r.code, 250);
    const m = sink.messages.find((x) => x.helo === 'spoof.test')!;
    assert.equal(m.client.address, '127.0.0.4');
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'spoof.test');
    assert.deepEqual(rec.anomalies, ['xclient_untrusted']);
  });

  it('refuses MAIL with a declared SIZE over the limit before binding', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO size.test');
    const r = await c.cmd('MAIL FROM:<a@example.org> SIZE=2000000');
    assert.equal(r.code, 552);
    assert.match(r.lines[0]!, /^5\.3\.4/);
    await c.cmd('QUIT');
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'size.test');
    assert.equal(rec.backend, null);
  });

  it('answers an over-long line with 500 5.5.2 and the anomaly', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO long.test');
    const r = await c.cmd('NOOP ' + 'x'.repeat(5000));
    assert.equal(r.code, 500);
    assert.match(r.lines[0]!, /^5\.5\.2 Line too long/);
    assert.equal((await c.cmd('NOOP')).code, 250);
    await c.cmd('QUIT');
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'long.test');
    assert.deepEqual(rec.anomalies, ['line_too_long']);
  });

  it('names pipelining without PIPELINING, a close without QUIT, and a disconnect in DATA', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('HELO oldschool.test');
    const rs = await c.send('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n', 2);
    assert.deepEqual(codes(rs), [250, 250]);
    c.end();
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'oldschool.test');
    assert.deepEqual([...(rec.anomalies as string[])].sort(), ['no_quit', 'pipelining_violation']);
    assert.equal(rec.close, 'client_closed');

    const d = await SmtpClient.connect(p.port);
    await d.waitReplies(1);
    await d.cmd('EHLO quitter.test');
    await d.cmd('MAIL FROM:<a@example.org>');
    await d.cmd('RCPT TO:<b@example.net>');
    await d.cmd('DATA');
    d.socket.write('Subject: half\r\n\r\nhalf a body');
    await new Promise((r) => setTimeout(r, 50));
    d.destroy();
    const rec2 = await p.waitFor((x) => x.event === 'session' && x.helo === 'quitter.test');
    assert.deepEqual(rec2.anomalies, ['disconnect_in_data']);
  });

  it('times out an idle client with 421 4.4.2, even one trickling bytes', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO slow.test');
    const start = Date.now();
    const trickle = setInterval(() => c.socket.write('N'), 200);
    await c.waitClose(5000);
    clearInterval(trickle);
    assert.ok(Date.now() - start < 2500, 'trickling bytes must not extend the command timeout');
    assert.match(c.received.toString(), /421 4\.4\.2 /);
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'slow.test');
    assert.equal(rec.close, 'timeout');
    assert.deepEqual(rec.anomalies, ['timeout']);
  });

  it('handles RSET and EHLO mid-session and several transactions on one connection', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO multi.test');
    await c.cmd('MAIL FROM:<first@example.org>');
    await c.cmd('RCPT TO:<x@example.net>');
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<x@example.net>')).code, 503, 'RSET ended the transaction at the backend');
    await c.cmd('MAIL FROM:<second@example.org>');
    assert.equal((await c.cmd('EHLO multi.test')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<x@example.net>')).code, 503, 'EHLO ended the transaction at the backend');
    for (let i = 0; i < 3; i++) {
      assert.equal((await c.cmd(`MAIL FROM:<n${i}@example.org>`)).code, 250);
      assert.equal((await c.cmd('RCPT TO:<x@example.net>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      assert.equal((await c.send(`Subject: ${i}\r\n\r\n.\r\n`))[0]!.code, 250);
    }
    await c.cmd('QUIT');
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'multi.test');
    assert.equal(rec.transactions, 3);
    assert.ok(!sink.messages.some((m) => m.from === 'first@example.org' || m.from === 'second@example.org'));
  });
});

describe('backend failures', () => {
  it('fails over to the next server when the first refuses connections or greets with 421', async () => {
    const sink = await startSink({ xclient: true });
    const refuser = await startRefuser('421 4.3.2 busy, go away');
    const dead = await closedPort();
    const p = await startPostern(
      basicYaml([`127.0.0.1:${dead}`, `127.0.0.1:${refuser.port}`, `127.0.0.1:${sink.address().port}`]).replace(
        'identity: xclient',
        'identity: xclient\n  strategy: round-robin',
      ),
    );
    try {
      // Health checks found two servers down; make them look up so sessions try them first.
      for (const s of p.postern.pool.servers) s.up = true;
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.5' });
      const r = await sendMessage(c, { helo: 'failover.test' });
      assert.equal(r.code, 250);
      const m = (await sink.waitFor(1))[0]!;
      assert.equal(m.client.address, '127.0.0.5');
      const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'failover.test');
      const { local: _local, handshake_ms: _ms, ...backend } = rec.backend as Record<string, unknown>;
      // The two servers failed over from, in the order tried, with the stage and the reason (issue 21).
      assert.deepEqual(backend, {
        address: `127.0.0.1:${sink.address().port}`,
        identity: 'xclient',
        pool: 'default',
        attempts: [
          { server: `127.0.0.1:${dead}`, stage: 'connect', error: `connect to 127.0.0.1:${dead}: connect ECONNREFUSED 127.0.0.1:${dead}` },
          { server: `127.0.0.1:${refuser.port}`, stage: 'greeting', error: 'greeting refused: 421 4.3.2 busy, go away' },
        ],
      });
      assert.deepEqual(rec.anomalies, []);
      assert.ok(refuser.connections >= 1);
    } finally {
      await p.stop();
      await sink.close();
      await refuser.close();
    }
  });

  it('answers 451 4.4.1 at once when no backend is usable, and logs why', async () => {
    const sink = await startSink({ xclient: false });
    const p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`]));
    try {
      const down = await p.waitFor((x) => x.event === 'backend' && x.state === 'down');
      assert.match(String(down.reason), /XCLIENT not offered/);
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      await c.cmd('EHLO nobackend.test');
      const t = Date.now();
      const rs = await c.send('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n', 3);
      assert.ok(Date.now() - t < 1000);
      assert.deepEqual(codes(rs), [451, 503, 503]);
      assert.match(rs[0]!.lines[0]!, /^4\.4\.1/);
      await c.cmd('QUIT');
      await p.waitFor((x) => x.event === 'bind_failed');
      assert.equal(sink.messages.length, 0);
    } finally {
      await p.stop();
      await sink.close();
    }
  });

  it('gives 421 4.4.2, never 250, when the backend dies mid-DATA', async () => {
    const sink = await startSink({ xclient: true });
    const cut = await startTcpCut(sink.address());
    const p = await startPostern(basicYaml([`127.0.0.1:${cut.port}`]));
    try {
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      await c.cmd('EHLO cut.test');
      await c.cmd('MAIL FROM:<a@example.org>');
      await c.cmd('RCPT TO:<b@example.net>');
      assert.equal((await c.cmd('DATA')).code, 354);
      const session = cut.toBackend.length - 1;
      c.socket.write('Subject: doomed\r\n\r\n' + 'x'.repeat(1000) + '\r\n');
      await cut.waitBytes(cut.toBackend.slice(0, session).reduce((a, b) => a + b.length, 0) + cut.toBackend[session]!.length + 1000);
      cut.cut();
      await c.waitClose();
      const text = c.received.toString();
      assert.match(text, /421 4\.4\.2 /);
      assert.doesNotMatch(text.split('354')[1] ?? '', /^250 /m);
      const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'cut.test');
      assert.equal(rec.close, 'backend_failed');
      assert.equal(sink.messages.length, 0);
    } finally {
      await p.stop();
      await cut.close();
      await sink.close();
    }
  });
});

describe('bare_lf: normalize', () => {
  it('relays the body with CRLF line ends and never lets <LF>.<LF> end it', async () => {
    const sink = await startSink({ xclient: true, keepBodies: true });
    const p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'smtp: { bare_lf: normalize }\n'));
    try {
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      await c.cmd('EHLO normalize.test');
      await c.cmd('MAIL FROM:<n@example.org>');
      await c.cmd('RCPT TO:<b@example.net>');
      await c.cmd('DATA');
      const [r] = await c.send('Subject: n\r\n\r\nline one\nline two\r.\nMAIL FROM:<evil@example.org>\r\n.\r\n');
      assert.equal(r!.code, 250);
      await c.cmd('QUIT');
      const msgs = await sink.waitFor(1);
      assert.equal(msgs.length, 1);
      // The strict receiver unstuffs the dot Postern doubled: the client's text, CRLF-terminated.
      assert.equal(msgs[0]!.body!.toString(), 'Subject: n\r\n\r\nline one\r\nline two\r\n.\r\nMAIL FROM:<evil@example.org>\r\n');
      const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'normalize.test');
      assert.deepEqual(rec.anomalies, ['bare_lf']);
    } finally {
      await p.stop();
      await sink.close();
    }
  });
});

describe('received_header: true', () => {
  it("prepends Postern's Received: header to the relayed body", async () => {
    const sink = await startSink({ xclient: true, keepBodies: true });
    const p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'received_header: true\n'));
    try {
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.6' });
      const port = c.socket.localPort!;
      const r = await sendMessage(c, { helo: 'traced.test', to: ['only@example.net'], body: 'Subject: traced\r\n\r\nbody\r\n' });
      assert.equal(r.code, 250);
      const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'traced.test');
      const body = sink.messages.find((m) => m.helo === 'traced.test')!.body!.toString();
      const re = new RegExp(
        `^Received: from traced\\.test \\(unknown \\[127\\.0\\.0\\.6\\]:${port}\\)\\r\\n\\tby postern\\.test \\(Postern\\) with ESMTP id ${rec.conn}\\r\\n\\tfor <only@example\\.net>; \\w{3}, \\d+ \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\\r\\nSubject: traced\\r\\n\\r\\nbody\\r\\n$`,
      );
      assert.match(body, re);
    } finally {
      await p.stop();
      await sink.close();
    }
  });
});

describe('backends.reverse_lookup', () => {
  it('looks the client up once (bounded) and still delivers', async () => {
    const sink = await startSink({ xclient: true });
    const p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`]).replace('identity: xclient', 'identity: xclient\n  reverse_lookup: true'));
    try {
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.9' });
      const t = Date.now();
      assert.equal((await sendMessage(c, { helo: 'rdns.test' })).code, 250);
      assert.ok(Date.now() - t < 7000);
      assert.equal(sink.messages.find((m) => m.helo === 'rdns.test')!.client.address, '127.0.0.9');
    } finally {
      await p.stop();
      await sink.close();
    }
  });
});

