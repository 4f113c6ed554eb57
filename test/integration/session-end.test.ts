// Every session ends, and the client's timer is honest (issue 21: B2, B3, a line without
// its end). Real sockets throughout: Postern in-process, a scripted backend on loopback,
// clients bound to their own loopback addresses.
//  - B2: a client that pipelines MAIL, RCPT and a huge BDAT, floods it, then closes, while
//    the backend stalls (stops reading after MAIL) or is killed. Reading from the client is
//    paused for backpressure when the backend fails; the session must still end: its
//    record written, its per-IP slot released, a new connection from the address admitted.
//  - B3: after a final reply slower than the command timeout, the client has the whole
//    command timeout from that reply, and from each later reply.
//  - A line that never ends: named line_too_long at once, the session closed after 64 times
//    the line limit, with 500 5.5.2.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { basicYaml, startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { startScriptBackend, until, type ScriptBackend, type ScriptConn } from '../helpers/script-backend.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const started: { p: TestPostern; b: ScriptBackend }[] = [];

after(async () => {
  for (const { p, b } of started) {
    await p.stop();
    await b.close();
  }
});

async function setup(b: ScriptBackend, limits: string): Promise<TestPostern> {
  const yaml = basicYaml([b.address]).replace('identity: xclient', 'identity: none') + `workers: 1\nlimits:\n${limits}`;
  const p = await startPostern(yaml);
  started.push({ p, b });
  return p;
}

/** Writes BDAT bytes as fast as the socket takes them for `ms` (bounded by time and count). */
async function flood(s: net.Socket, ms: number): Promise<number> {
  const block = Buffer.alloc(64 * 1024, 0x61);
  const end = Date.now() + ms;
  let sent = 0;
  for (let i = 0; i < 100_000 && Date.now() < end && !s.destroyed; i++) {
    sent += block.length;
    if (!s.write(block)) {
      await Promise.race([new Promise((r) => s.once('drain', r)), sleep(Math.max(1, end - Date.now()))]);
    }
  }
  return sent;
}

const sessionOf = (helo: string) => (r: LogRecord) => r.event === 'session' && r.helo === helo;

describe('B2: every session ends, whatever the flow state', () => {
  /** A backend that answers EHLO, then stops reading at MAIL and never answers again. */
  const stalling = () =>
    startScriptBackend({
      ehlo: ['PIPELINING', 'CHUNKING', '8BITMIME'],
      reply: (line: string, conn: ScriptConn) => {
        if (line.startsWith('MAIL')) conn.socket.pause();
        return conn.commands.some((c) => c.startsWith('MAIL')) ? '' : undefined;
      },
    });

  for (const variant of ['stalls', 'is killed'] as const) {
    it(`backend ${variant} mid-BDAT while the client is paused for backpressure, then the client closes`, async () => {
      const b = await stalling();
      const p = await setup(b, '  per_ip: { connections: 1 }\n  timeouts: { command: 3s, data: 30s, greeting: 30s }\n');
      const helo = `flood-${variant === 'stalls' ? 'stall' : 'kill'}.test`;
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.21' });
      await c.waitReplies(1);
      await c.cmd(`EHLO ${helo}`);
      c.socket.write('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 40000000 LAST\r\n');
      const sent = await flood(c.socket, 2000);
      assert.ok(sent > 2 * 1024 * 1024, `flooded ${sent} bytes`);
      await until(() => b.conns.some((x) => x.commands.some((l) => l.startsWith('MAIL'))), 'the backend to see MAIL', 5000);
      c.socket.destroy();
      const t0 = Date.now();
      if (variant === 'is killed') for (const x of b.conns) x.socket.destroy();
      // Stalled: the RCPT's reply timer (timeouts.command, 3 s) declares the backend lost.
      const rec = await p.waitFor(sessionOf(helo), 15_000);
      const ms = Date.now() - t0;
      assert.equal(rec.close, 'backend_failed');
      assert.ok(ms < 10_000, `record after ${ms} ms`);
      await until(() => p.postern.sessions.size === 0, '/sessions to empty', 2000);
      const again = await SmtpClient.connect(p.port, { localAddress: '127.0.0.21' });
      const [greet] = await again.waitReplies(1);
      assert.equal(greet!.code, 220, `a new connection from the address is admitted: ${greet!.lines.join(' ')}`);
      await again.cmd('QUIT');
      await again.waitClose();
    });
  }

  it('a client that never reads nor closes is cut within the close guard after the 421', async () => {
    const b = await stalling();
    const p = await setup(b, '  per_ip: { connections: 1 }\n  timeouts: { command: 2s, data: 30s, greeting: 30s }\n');
    const helo = 'deaf.test';
    const s = net.connect({ port: p.port, host: '127.0.0.1', localAddress: '127.0.0.22' });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write(`EHLO ${helo}\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nBDAT 40000000 LAST\r\n`);
    s.pause(); // never reads again, never closes: only Postern can end this
    void flood(s, 1500);
    const rec = await p.waitFor(sessionOf(helo), 15_000);
    assert.equal(rec.close, 'backend_failed');
    await until(() => p.postern.sessions.size === 0, '/sessions to empty', 2000);
    const again = await SmtpClient.connect(p.port, { localAddress: '127.0.0.22' });
    assert.equal((await again.waitReplies(1))[0]!.code, 220);
    again.destroy();
    s.destroy();
  });
});

describe('B3: the command timer runs from the last reply written', () => {
  it('after a final reply slower than the command timeout, the client keeps its whole timeout', async () => {
    // The dot is answered 5 s after it arrives, with timeouts.command 2 s.
    let inBody = false;
    const b = await startScriptBackend({
      ehlo: ['PIPELINING', '8BITMIME'],
      reply: (line, conn) => {
        if (inBody) {
          if (line === '.') {
            inBody = false;
            setTimeout(() => conn.socket.destroyed || conn.socket.write('250 2.0.0 Ok: queued as SLOW\r\n'), 5000);
          }
          return '';
        }
        if (line === 'DATA') {
          inBody = true;
          return '354 go ahead\r\n';
        }
        return undefined;
      },
    });
    const p = await setup(b, '  timeouts: { command: 2s, data: 10s, greeting: 10s, final_reply: 30s }\n');
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.23' });
    await c.waitReplies(1);
    await c.cmd('EHLO slow-final.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<b@example.net>');
    assert.equal((await c.cmd('DATA')).code, 354);
    const [final] = await c.send('Subject: slow\r\n\r\nbody\r\n.\r\n', 1, 10_000);
    assert.equal(final!.code, 250, 'the backend’s 250, late, and no early 421');
    // 1.5 s after the 250, and 6.5 s after the dot: more than three command timeouts.
    await sleep(1500);
    const noop = await c.cmd('NOOP');
    assert.equal(noop.code, 250, `NOOP after the late 250: ${noop.lines.join(' ')}`);
    // Each reply gives the whole timeout again: NOOPs 1.5 s apart, 4.5 s in all.
    for (let i = 0; i < 3; i++) {
      await sleep(1500);
      assert.equal((await c.cmd('NOOP')).code, 250, `NOOP ${i + 2}`);
    }
    // Idle from here: cut at the command timeout measured from the last reply.
    const last = Date.now();
    await c.waitClose(6000);
    const idle = Date.now() - last;
    assert.ok(idle >= 1800 && idle < 3500, `cut ${idle} ms after the last reply`);
    assert.match(c.received.toString('latin1'), /421 4\.4\.2 [^\r]*timeout/);
    const rec = await p.waitFor(sessionOf('slow-final.test'), 5000);
    assert.equal(rec.close, 'timeout');
    assert.equal(rec.transactions, 1);
  });
});

describe('a line that never ends', () => {
  it('is named line_too_long at once and closes the session after 64 line lengths, with 500 5.5.2', async () => {
    const b = await startScriptBackend();
    const p = await setup(b, '  line_length: 1024\n  timeouts: { command: 60s, data: 60s, greeting: 60s }\n');
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.24' });
    await c.waitReplies(1);
    await c.cmd('EHLO endless.test');
    const t0 = Date.now();
    c.socket.write('NOOP ' + 'x'.repeat(2000));
    const anomaly = await p.waitFor((r) => r.event === 'anomaly' && r.kind === 'line_too_long', 3000);
    assert.ok(Date.now() - t0 < 1000, 'named at once, not at a line end that never comes');
    assert.equal(c.replies.length, 2, 'no reply yet: the line may still end');
    assert.ok(p.records.indexOf(anomaly) >= 0);
    // 64 × 1024 bytes in all without a line end: the session closes, long before any timeout.
    const chunk = 'y'.repeat(8192);
    for (let i = 0; i < 20 && !c.closed; i++) {
      c.socket.write(chunk);
      await sleep(20);
    }
    await c.waitClose(5000);
    assert.ok(Date.now() - t0 < 5000, 'closed long before the command timeout');
    const replies = c.replies.slice(2);
    assert.equal(replies.length, 1, `one reply: ${JSON.stringify(replies.map((r) => r.lines))}`);
    assert.equal(replies[0]!.code, 500);
    assert.match(replies[0]!.lines[0]!, /^5\.5\.2 Line too long/);
    const rec = await p.waitFor(sessionOf('endless.test'), 5000);
    assert.equal(rec.close, 'error');
    assert.deepEqual(rec.anomalies, ['line_too_long']);
  });

  it('a long line that ends is refused as before and the session goes on', async () => {
    const b = await startScriptBackend();
    const p = await setup(b, '  line_length: 1024\n');
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.25' });
    await c.waitReplies(1);
    await c.cmd('EHLO ends.test');
    const r = await c.cmd('NOOP ' + 'x'.repeat(30 * 1024));
    assert.equal(r.code, 500);
    assert.equal((await c.cmd('NOOP')).code, 250, 'under 64 line lengths: the session goes on');
    await c.cmd('QUIT');
    const rec = await p.waitFor(sessionOf('ends.test'), 5000);
    assert.equal(rec.close, 'quit');
    assert.deepEqual(rec.anomalies, ['line_too_long']);
  });
});
