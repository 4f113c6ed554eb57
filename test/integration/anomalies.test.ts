// The anomaly catalog: each misbehaving client (raw sockets) gets exactly the kinds it
// earned (the well-behaved client corpus is client-corpus.test.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { basicYaml, startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const sorted = (r: LogRecord) => [...(r.anomalies as string[])].sort();

describe('misbehaving clients: exactly the expected anomalies', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(
      basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { timeouts: { command: 500ms, data: 500ms, greeting: 500ms } }\n'),
    );
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  /** Runs `script` on a fresh connection and returns that session's record. */
  async function session(script: (c: SmtpClient) => Promise<void>): Promise<LogRecord> {
    const c = await SmtpClient.connect(p.port);
    const port = c.socket.localPort!;
    await script(c);
    return p.waitFor((x) => x.event === 'session' && (x.client as { port: number }).port === port, 5000);
  }

  const cases: [string, string[], (c: SmtpClient) => Promise<void>][] = [
    ['pipelining without PIPELINING', ['pipelining_violation'], async (c) => {
      await c.waitReplies(1);
      await c.send('EHLO a.test\r\nMAIL FROM:<a@example.org>\r\n', 2);
      await c.cmd('QUIT');
    }],
    ['an HTTP request', ['no_quit', 'non_smtp'], async (c) => {
      await c.waitReplies(1);
      await c.send('GET / HTTP/1.1\r\nHost: mx.example\r\n', 2);
      c.end();
    }],
    ['a command ended by a bare LF', ['bare_lf'], async (c) => {
      await c.waitReplies(1);
      await c.send('EHLO lf.test\n');
      await c.cmd('QUIT');
    }],
    ['an over-long command line', ['line_too_long'], async (c) => {
      await c.waitReplies(1);
      await c.send('EHLO ' + 'l'.repeat(6000) + '\r\n');
      await c.cmd('QUIT');
    }],
    ['a close in the middle of DATA', ['disconnect_in_data'], async (c) => {
      await c.waitReplies(1);
      await c.cmd('EHLO mid.test');
      await c.cmd('MAIL FROM:<a@example.org>');
      await c.cmd('RCPT TO:<b@example.net>');
      await c.cmd('DATA');
      c.socket.write('Subject: cut\r\n\r\npartial');
      await new Promise((r) => setTimeout(r, 50));
      c.end();
    }],
    ['a close without QUIT', ['no_quit'], async (c) => {
      await c.waitReplies(1);
      await c.cmd('EHLO noquit.test');
      c.end();
    }],
    ['an idle client', ['timeout'], async (c) => {
      await c.waitReplies(1);
      await c.waitClose(3000);
    }],
    ['XCLIENT from an untrusted client', ['xclient_untrusted'], async (c) => {
      await c.waitReplies(1);
      await c.cmd('EHLO x.test');
      await c.cmd('XCLIENT ADDR=192.0.2.1');
      await c.cmd('QUIT');
    }],
    ['a bare LF in a message body', ['bare_lf'], async (c) => {
      await c.waitReplies(1);
      await c.cmd('EHLO body.test');
      await c.cmd('MAIL FROM:<a@example.org>');
      await c.cmd('RCPT TO:<b@example.net>');
      await c.cmd('DATA');
      await c.send('Subject: x\r\n\r\nsmuggle\n.\nRSET\r\n.\r\n');
      await c.cmd('QUIT');
    }],
    // Bound, QUIT pipelined behind RSET: the 221 waits for the backend's reply to RSET. The
    // client closes (FIN) and is gone before it: the 221 meets a reset.
    ['QUIT, then gone before the 221 (behind a backend reply): quit_no_wait', ['quit_no_wait'], async (c) => {
      await c.waitReplies(1);
      await c.cmd('EHLO rst.test');
      await c.cmd('MAIL FROM:<a@example.org>');
      c.socket.write('RSET\r\nQUIT\r\n');
      c.socket.end();
      c.socket.destroy();
    }],
    // A reset before the client's FIN, even after it read the 221 (RST-after-QUIT as it
    // happens on real networks): a notice, not a warning.
    ['a reset after reading the 221: rst_after_quit', ['rst_after_quit'], async (c) => {
      await c.waitReplies(1);
      await c.cmd('EHLO rst-late.test');
      await c.cmd('QUIT');
      c.socket.resetAndDestroy();
    }],
  ];
  for (const [name, kinds, script] of cases) {
    it(name, async () => {
      const rec = await session(script);
      assert.deepEqual(sorted(rec), [...kinds].sort(), JSON.stringify(rec));
      for (const k of kinds) await p.waitFor((x) => x.event === 'anomaly' && x.kind === k && x.conn === rec.conn);
    });
  }

  it('QUIT and a reset at once (Outlook): rst_after_quit, close=quit', async () => {
    // Unbound, Postern writes its 221 at once, into the reset: ECONNRESET on that write.
    const rec = await session(async (c) => {
      await c.waitReplies(1);
      await c.cmd('EHLO rst2.test');
      c.socket.write('QUIT\r\n');
      c.socket.resetAndDestroy();
    });
    assert.equal(rec.close, 'quit');
    assert.deepEqual(rec.anomalies, ['rst_after_quit']);
  });
});

describe('greet wait and early talkers', () => {
  it('pregreet: a client talking during the 220- wait is caught; reject answers 554', async () => {
    const sink = await startSink({ xclient: true });
    const logP = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'smtp: { pregreet: { wait: 300ms, action: log } }\n'));
    const rejP = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'smtp: { pregreet: { wait: 300ms, action: reject } }\n'));
    try {
      // A patient client sees 220- then 220 and no anomaly.
      const good = await SmtpClient.connect(logP.port);
      const [g] = await good.waitReplies(1, 2000);
      assert.equal(g!.code, 220);
      assert.equal(g!.lines.length, 2, 'a 220- line, then the final 220');
      await good.cmd('EHLO patient.test');
      await good.cmd('QUIT');
      const goodRec = await logP.waitFor((x) => x.event === 'session' && x.helo === 'patient.test');
      assert.deepEqual(goodRec.anomalies, []);
      // An early talker is logged, then served in order.
      const early = await SmtpClient.connect(logP.port);
      early.socket.write('EHLO early.test\r\n');
      const rs = await early.waitReplies(2, 2000);
      assert.deepEqual(rs.map((r) => r.code), [220, 250]);
      await early.cmd('QUIT');
      const rec = await logP.waitFor((x) => x.event === 'session' && x.helo === 'early.test');
      assert.deepEqual(rec.anomalies, ['pregreet']);
      // With reject: 554 instead of the final 220.
      const bad = await SmtpClient.connect(rejP.port);
      bad.socket.write('EHLO rude.test\r\n');
      await bad.waitClose(2000);
      assert.match(bad.received.toString(), /^220-.*\r\n554 5\.5\.0 /s);
    } finally {
      await logP.stop();
      await rejP.stop();
      await sink.close();
    }
  });

  it('non_smtp with action disconnect answers 521 and closes', async () => {
    const sink = await startSink({ xclient: true });
    const p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`], 'smtp: { non_smtp: { action: disconnect } }\n'));
    try {
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      c.socket.write('GET / HTTP/1.0\r\n\r\n');
      await c.waitClose();
      assert.match(c.received.toString(), /\r\n521 5\.5\.1 /);
    } finally {
      await p.stop();
      await sink.close();
    }
  });
});
