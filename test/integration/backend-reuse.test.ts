// backends.pool.reuse: with identity none, a backend connection whose session ended cleanly
// carries the next session (no connect, greeting, EHLO or QUIT in between), the way
// Postfix's own SMTP client caches connections. The sink reports the TCP peer of every
// message, so distinct peer ports are distinct backend connections; real Postfix's log
// counts the commands each connection carried.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { postfixAvailable, startPostfix } from '../helpers/postfix.js';
import { basicYaml, startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function yamlFor(port: number, pool: string, identity = 'none'): string {
  return basicYaml([`127.0.0.1:${port}`])
    .replace('identity: xclient', `identity: ${identity}\n  pool: ${pool}`)
    .replace('interval: 1s', 'interval: 1h');
}

/** Runs `n` whole sessions one after another from 127.0.0.2; returns their session records. */
async function sessions(p: TestPostern, n: number, helo = (i: number) => `c${i}.test`): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for (let i = 0; i < n; i++) {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
    const port = c.socket.localPort!;
    const r = await sendMessage(c, { from: `s${i}@example.org`, to: [`r${i}@example.net`], helo: helo(i) });
    assert.equal(r.code, 250, `session ${i}`);
    await c.waitClose();
    // Client ports come round again: skip the records already taken.
    out.push(await p.waitFor((x) => x.event === 'session' && !out.includes(x) && (x.client as { port: number }).port === port));
  }
  return out;
}

const peers = (sink: Sink) => new Set(sink.messages.map((m) => m.peer.port));
const reused = (rec: LogRecord) => ((rec.backend as { reused?: number }).reused ?? 0);

describe('backend connection reuse (identity none)', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink({ keepBodies: true, rejectRcpt: (a) => (a.startsWith('nobody@') ? '550 5.1.1 No such user' : null) });
  });
  after(() => sink.close());

  it('ten sessions in a row ride one backend connection; every message arrives whole, with its own envelope', async () => {
    sink.messages.length = 0;
    const p = await startPostern(yamlFor(sink.address().port, '{ reuse: 100, keepalive: 5s }'));
    try {
      const recs = await sessions(p, 10, () => 'same.test');
      const msgs = await sink.waitFor(10);
      assert.equal(peers(sink).size, 1, 'one backend connection');
      msgs.forEach((m, i) => {
        assert.equal(m.from, `s${i}@example.org`);
        assert.deepEqual(m.rcpts, [`r${i}@example.net`]);
        assert.equal(m.helo, 'same.test');
      });
      assert.deepEqual(recs.map(reused), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      for (const r of recs) assert.equal(r.close, 'quit');
    } finally {
      await p.stop();
    }
  });

  it('reuse: 1 means a connection per session; reuse: 3 caps the sessions one connection carries', async () => {
    for (const [reuse, conns] of [
      [1, 4],
      [3, 2],
    ] as const) {
      sink.messages.length = 0;
      const p = await startPostern(yamlFor(sink.address().port, `{ reuse: ${reuse}, keepalive: 5s }`));
      try {
        await sessions(p, 4, () => 'same.test');
        await sink.waitFor(4);
        assert.equal(peers(sink).size, conns, `reuse ${reuse}`);
      } finally {
        await p.stop();
      }
    }
  });

  it('the next client under another HELO name: the backend is told that name before its MAIL', async () => {
    sink.messages.length = 0;
    const p = await startPostern(yamlFor(sink.address().port, '{ reuse: 100, keepalive: 5s }'));
    try {
      await sessions(p, 3);
      const msgs = await sink.waitFor(3);
      assert.equal(peers(sink).size, 1);
      assert.deepEqual(
        msgs.map((m) => m.helo),
        ['c0.test', 'c1.test', 'c2.test'],
      );
    } finally {
      await p.stop();
    }
  });

  it('a session that saw a backend refusal, or left a transaction open, does not hand its connection on', async () => {
    sink.messages.length = 0;
    const p = await startPostern(yamlFor(sink.address().port, '{ reuse: 100, keepalive: 5s }'));
    try {
      // A refused recipient (Postfix would count it against the connection).
      let c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
      const r = await sendMessage(c, { to: ['nobody@example.net', 'b@example.net'] });
      assert.equal(r.code, 250);
      await c.waitClose();
      // QUIT inside a transaction.
      c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
      await c.waitReplies(1);
      await c.cmd('EHLO open.test');
      assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 250);
      assert.equal((await c.cmd('QUIT')).code, 221);
      await c.waitClose();
      await sessions(p, 1);
      const msgs = await sink.waitFor(2);
      assert.equal(new Set(msgs.map((m) => m.peer.port)).size, 2, 'the third session did not get either earlier connection');
      const recs = p.records.filter((x) => x.event === 'session');
      assert.deepEqual(recs.map(reused), [0, 0, 0]);
    } finally {
      await p.stop();
    }
  });

  it('QUIT pipelined right after the end of DATA still hands the connection on, after the 250', async () => {
    sink.messages.length = 0;
    const p = await startPostern(yamlFor(sink.address().port, '{ reuse: 100, keepalive: 5s }'));
    try {
      for (let i = 0; i < 3; i++) {
        const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
        await c.waitReplies(1);
        await c.cmd('EHLO piped.test');
        const replies = await c.send('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n', 3);
        assert.deepEqual(
          replies.map((x) => x.code),
          [250, 250, 354],
        );
        const [done, bye] = await c.send('Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n', 2);
        assert.equal(done!.code, 250);
        assert.equal(bye!.code, 221);
        await c.waitClose();
      }
      await sink.waitFor(3);
      assert.equal(peers(sink).size, 1);
    } finally {
      await p.stop();
    }
  });

  it('a client that leaves without QUIT after its mail also hands the connection on', async () => {
    sink.messages.length = 0;
    const p = await startPostern(yamlFor(sink.address().port, '{ reuse: 100, keepalive: 5s }'));
    try {
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
      assert.equal((await sendMessage(c, { helo: 'same.test', quit: false })).code, 250);
      c.end();
      await c.waitClose();
      await p.waitFor((x) => x.event === 'session');
      await sessions(p, 1, () => 'same.test');
      await sink.waitFor(2);
      assert.equal(peers(sink).size, 1);
    } finally {
      await p.stop();
    }
  });

  it('identity xclient never reuses: a second XCLIENT on one connection would be refused by Postfix', async () => {
    const xsink = await startSink({ xclient: true });
    const p = await startPostern(yamlFor(xsink.address().port, '{ reuse: 100, keepalive: 5s }', 'xclient'));
    try {
      await sessions(p, 3, () => 'same.test');
      const msgs = await xsink.waitFor(3);
      assert.equal(new Set(msgs.map((m) => m.peer.port)).size, 3);
      for (const m of msgs) assert.equal(m.told, 'xclient');
    } finally {
      await p.stop();
      await xsink.close();
    }
  });
});

describe('backend connection reuse against a raw backend', () => {
  it('an idle connection is closed with QUIT after keepalive, never just dropped', async () => {
    // A backend that logs every command and every close, per connection.
    const log: string[] = [];
    let conns = 0;
    const server = net.createServer((s) => {
      const id = ++conns;
      s.write('220 raw.test ESMTP\r\n');
      let buf = '';
      let data = false;
      s.on('data', (d) => {
        buf += d.toString('latin1');
        let i: number;
        while ((i = buf.indexOf('\r\n')) !== -1) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (data) {
            if (line === '.') {
              data = false;
              s.write('250 2.0.0 queued\r\n');
            }
            continue;
          }
          const verb = line.split(' ')[0]!.toUpperCase();
          log.push(`${id} ${verb}`);
          if (verb === 'EHLO') s.write('250-raw.test\r\n250 PIPELINING\r\n');
          else if (verb === 'DATA') {
            data = true;
            s.write('354 go\r\n');
          } else if (verb === 'QUIT') s.end('221 2.0.0 bye\r\n');
          else s.write('250 2.0.0 ok\r\n');
        }
      });
      s.on('close', () => log.push(`${id} closed`));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const p = await startPostern(yamlFor(port, '{ reuse: 100, keepalive: 300ms }'));
    try {
      await sessions(p, 2, () => 'same.test');
      // The health check's connection (1) says EHLO and QUIT; the sessions share one more.
      const mine = () => log.filter((l) => !l.startsWith('1 '));
      assert.deepEqual(mine(), ['2 EHLO', '2 MAIL', '2 RCPT', '2 DATA', '2 MAIL', '2 RCPT', '2 DATA']);
      const deadline = Date.now() + 5000;
      while (!mine().includes('2 closed')) {
        assert.ok(Date.now() < deadline, `closed after keepalive: ${mine().join(', ')}`);
        await sleep(50);
      }
      assert.deepEqual(mine().slice(-2), ['2 QUIT', '2 closed']);
      // The next session connects anew.
      await sessions(p, 1, () => 'same.test');
      assert.deepEqual(mine().slice(-4), ['3 EHLO', '3 MAIL', '3 RCPT', '3 DATA']);
    } finally {
      await p.stop();
      server.close();
    }
  });
});

describe('backend connection reuse with real Postfix', { skip: !postfixAvailable() && 'postfix is not installed, or not root' }, () => {
  it('one smtpd connection carries five clients’ mail, with no error counted, and ends with QUIT', async () => {
    const pf = await startPostfix();
    await pf.waitForLog(/lost connection after CONNECT/, 3000).catch(() => undefined);
    const from = pf.readLog().length;
    const p = await startPostern(yamlFor(pf.port, '{ reuse: 100, keepalive: 300ms }'));
    try {
      await sessions(p, 5, () => 'same.test');
      const line = await pf.waitForLog(/disconnect from unknown\[127\.0\.0\.1\]:\d+ ehlo=1 mail=5 rcpt=5 data=5 quit=1 commands=17\b/, 10_000);
      assert.ok(line);
      const log = pf.readLog().slice(from);
      assert.doesNotMatch(log, /lost connection|reject|warning/);
      assert.equal((log.match(/: client=unknown\[127\.0\.0\.1\]/g) ?? []).length, 5, log);
    } finally {
      await p.stop();
      await pf.stop();
    }
  });
});
