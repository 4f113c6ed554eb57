// ESMTP LIMITS (RFC 9422), SIZE and admission, over real sockets with pipelined bursts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const codes = (rs: { code: number }[]) => rs.map((r) => r.code);

describe('LIMITS advertised and enforced', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(
      basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { mailmax: 3, rcptmax: 5, rcptdomainmax: 2, message_size: 64KB }\n'),
    );
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  it('advertises LIMITS with the configured values on every EHLO', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    const e1 = await c.cmd('EHLO limits.test');
    assert.ok(e1.lines.includes('LIMITS MAILMAX=3 RCPTMAX=5 RCPTDOMAINMAX=2'), e1.lines.join('|'));
    await c.cmd('MAIL FROM:<a@example.org>');
    const e2 = await c.cmd('EHLO limits.test');
    assert.ok(e2.lines.includes('LIMITS MAILMAX=3 RCPTMAX=5 RCPTDOMAINMAX=2'));
    await c.cmd('QUIT');
  });

  it('8 pipelined RCPTs with RCPTMAX=5: five reach the backend, three get 452 4.5.3 in place', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO rcptmax.test');
    const rcpts = Array.from({ length: 8 }, (_, i) => `RCPT TO:<r${i}@example.net>\r\n`).join('');
    const rs = await c.send(`MAIL FROM:<rm@example.org>\r\n${rcpts}DATA\r\n`, 10);
    assert.deepEqual(codes(rs), [250, 250, 250, 250, 250, 250, 452, 452, 452, 354]);
    for (const r of rs.slice(6, 9)) assert.match(r.lines[0]!, /^4\.5\.3 Too many recipients/);
    const [end] = await c.send('Subject: x\r\n\r\n.\r\n');
    assert.equal(end!.code, 250);
    await c.cmd('QUIT');
    const m = sink.messages.find((x) => x.from === 'rm@example.org')!;
    assert.deepEqual(m.rcpts, ['r0@example.net', 'r1@example.net', 'r2@example.net', 'r3@example.net', 'r4@example.net']);
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'rcptmax.test');
    assert.deepEqual(rec.limit_rejections, { rcptmax: 3 });
    assert.deepEqual(rec.anomalies, []);
  });

  it('RCPTDOMAINMAX counts domains case-insensitively and after IDNA', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO domains.test');
    const rs = await c.send(
      // A U-label address needs SMTPUTF8 on its transaction (RFC 6531 §3.4).
      'MAIL FROM:<d@example.org> SMTPUTF8\r\n' +
        'RCPT TO:<a@Bücher.Example>\r\n' +
        'RCPT TO:<b@xn--bcher-kva.example>\r\n' +
        'RCPT TO:<c@OTHER.net>\r\n' +
        'RCPT TO:<d@other.NET>\r\n' +
        'RCPT TO:<e@third.org>\r\n' +
        'RSET\r\nMAIL FROM:<d2@example.org>\r\nRCPT TO:<f@third.org>\r\n',
      9,
    );
    assert.deepEqual(codes(rs), [250, 250, 250, 250, 250, 452, 250, 250, 250]);
    assert.match(rs[5]!.lines[0]!, /^4\.5\.3 Too many recipient domains/);
    await c.cmd('QUIT');
  });

  it('MAILMAX: the (m+1)th MAIL gets 421 4.7.0 after the earlier replies, and the session closes', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO mailmax.test');
    const rs = await c.send(
      'MAIL FROM:<m1@example.org>\r\nRSET\r\nMAIL FROM:<m2@example.org>\r\nRSET\r\nMAIL FROM:<m3@example.org>\r\nRSET\r\nMAIL FROM:<m4@example.org>\r\nNOOP\r\n',
      7,
    );
    assert.deepEqual(codes(rs), [250, 250, 250, 250, 250, 250, 421]);
    assert.match(rs[6]!.lines[0]!, /^4\.7\.0 Too many transactions/);
    await c.waitClose();
    assert.equal(c.replies.length, 9, 'greeting, EHLO, 7 replies: nothing after the 421');
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'mailmax.test');
    assert.equal(rec.close, 'limit');
    assert.deepEqual(rec.limit_rejections, { mailmax: 1 });
  });

  it('SIZE: a body growing over the limit is cut off from the backend and refused with 552 after its terminator', async () => {
    const before = sink.messages.length;
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO bigbody.test');
    await c.cmd('MAIL FROM:<big@example.org>');
    await c.cmd('RCPT TO:<b@example.net>');
    assert.equal((await c.cmd('DATA')).code, 354);
    const line = 'z'.repeat(78) + '\r\n';
    const [r] = await c.send('Subject: big\r\n\r\n' + line.repeat(1000) + '.\r\n');
    assert.equal(r!.code, 552);
    assert.match(r!.lines[0]!, /^5\.3\.4/);
    // The next transaction binds anew and works.
    const ok = await sendMessage(c, { helo: 'bigbody.test', from: 'small@example.org' });
    assert.equal(ok.code, 250);
    assert.equal(sink.messages.length, before + 1);
    assert.ok(!sink.messages.some((m) => m.from === 'big@example.org'));
  });
});

describe('LIMITS lowered to the backend', () => {
  it('offers and enforces the lower RCPTMAX a backend advertises', async () => {
    const sink = await startSink({ xclient: true, limits: { rcptmax: 2, mailmax: 50 } });
    const p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { mailmax: 10, rcptmax: 5, rcptdomainmax: null }\n'));
    try {
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      const e = await c.cmd('EHLO lowered.test');
      assert.ok(e.lines.includes('LIMITS MAILMAX=10 RCPTMAX=2'), e.lines.join('|'));
      const rs = await c.send('MAIL FROM:<l@example.org>\r\nRCPT TO:<a@x.net>\r\nRCPT TO:<b@x.net>\r\nRCPT TO:<c@x.net>\r\n', 4);
      assert.deepEqual(codes(rs), [250, 250, 250, 452]);
      const e2 = await c.cmd('EHLO lowered.test');
      assert.ok(e2.lines.includes('LIMITS MAILMAX=10 RCPTMAX=2'), 'after binding: the bound backend lowers it');
      await c.cmd('QUIT');
    } finally {
      await p.stop();
      await sink.close();
    }
  });
});

describe('admission before the greeting', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink({ xclient: true });
  });
  after(() => sink.close());

  async function greeting(port: number, opts: { localAddress?: string; host?: string } = {}) {
    const c = await SmtpClient.connect(port, opts);
    const [r] = await c.waitReplies(1);
    return { c, r: r! };
  }

  it('caps concurrent connections per client address (IPv4 and ::1)', async () => {
    const p = await startPostern(
      basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { per_ip: { connections: 2, rate: 100/1m } }\n').replace(
        '    listen: 127.0.0.1:0\n',
        '    listen: "[::]:0"\n',
      ),
    );
    try {
      const a = await greeting(p.port, { localAddress: '127.0.0.2' });
      const b = await greeting(p.port, { localAddress: '127.0.0.2' });
      assert.equal(a.r.code, 220);
      assert.equal(b.r.code, 220);
      const third = await greeting(p.port, { localAddress: '127.0.0.2' });
      assert.equal(third.r.code, 421);
      assert.match(third.r.lines[0]!, /^4\.7\.0 /);
      await third.c.waitClose();
      const other = await greeting(p.port, { localAddress: '127.0.0.3' });
      assert.equal(other.r.code, 220, 'another address is not affected');
      const v6a = await greeting(p.port, { host: '::1' });
      const v6b = await greeting(p.port, { host: '::1' });
      const v6c = await greeting(p.port, { host: '::1' });
      assert.deepEqual([v6a.r.code, v6b.r.code, v6c.r.code], [220, 220, 421]);
      const rec = await p.waitFor((x) => x.event === 'session' && x.close === 'limit');
      assert.deepEqual(rec.anomalies, []);
      assert.equal(rec.limit, 'per_ip_connections');
      // A slot frees when a session ends.
      await a.c.cmd('QUIT');
      await a.c.waitClose();
      await p.waitFor((x) => x.event === 'session' && x.close === 'quit');
      const again = await greeting(p.port, { localAddress: '127.0.0.2' });
      assert.equal(again.r.code, 220);
      for (const x of [b, other, v6a, v6b, again]) x.c.destroy();
    } finally {
      await p.stop();
    }
  });

  it('limits the connection rate per client address', async () => {
    const p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { per_ip: { connections: 100, rate: 3/1m } }\n'));
    try {
      const got: number[] = [];
      for (let i = 0; i < 4; i++) {
        const g = await greeting(p.port, { localAddress: '127.0.0.4' });
        got.push(g.r.code);
        g.c.destroy();
      }
      assert.deepEqual(got, [220, 220, 220, 421]);
      const other = await greeting(p.port, { localAddress: '127.0.0.5' });
      assert.equal(other.r.code, 220);
      other.c.destroy();
      await p.waitFor((x) => x.event === 'session' && x.limit === 'per_ip_rate');
    } finally {
      await p.stop();
    }
  });

  it('caps the total number of connections', async () => {
    const p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { max_connections: 3 }\n'));
    try {
      const open = [];
      for (let i = 0; i < 3; i++) open.push(await greeting(p.port, { localAddress: `127.0.0.${10 + i}` }));
      assert.deepEqual(open.map((g) => g.r.code), [220, 220, 220]);
      const fourth = await greeting(p.port, { localAddress: '127.0.0.20' });
      assert.equal(fourth.r.code, 421);
      for (const g of open) g.c.destroy();
      await p.waitFor((x) => x.event === 'session' && x.limit === 'max_connections');
    } finally {
      await p.stop();
    }
  });

  it('greeting and data timeouts answer 421 4.4.2 and close with close=timeout', async () => {
    const p = await startPostern(
      basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { timeouts: { greeting: 300ms, command: 2s, data: 300ms } }\n'),
    );
    try {
      const g = await greeting(p.port);
      await g.c.waitClose(3000);
      assert.match(g.c.received.toString(), /421 4\.4\.2 /);
      const d = await SmtpClient.connect(p.port);
      await d.waitReplies(1);
      await d.cmd('EHLO datatimeout.test');
      await d.cmd('MAIL FROM:<a@example.org>');
      await d.cmd('RCPT TO:<b@example.net>');
      await d.cmd('DATA');
      d.socket.write('Subject: stalled\r\n');
      await d.waitClose(3000);
      assert.match(d.received.toString(), /421 4\.4\.2 /);
      const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'datatimeout.test');
      assert.equal(rec.close, 'timeout');
      assert.ok(!sink.messages.some((m) => m.from === 'a@example.org' && m.helo === 'datatimeout.test'));
    } finally {
      await p.stop();
    }
  });
});
