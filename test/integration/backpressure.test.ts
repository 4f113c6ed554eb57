// Memory per session is bounded whatever the client does (issue 13 finding 1): clients that
// pipeline without end and never read their replies, thousands of idle connections, and
// slowloris clients in the command and DATA phases, against Postern in its own process
// (its RSS read from /proc) while an ordinary client keeps sending mail through it.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { rssOf, startPosternProcess, type PosternProcess } from '../helpers/postern-process.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MB = 1024 * 1024;

/** Pipelines `line` in 64 KB blocks for `ms`, never reading a reply. */
function flood(port: number, localAddress: string, line: string, ms: number): Promise<{ socket: net.Socket; sent: number }> {
  return new Promise((resolve, reject) => {
    const block = Buffer.from(line.repeat(Math.ceil(65536 / line.length)));
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let sent = 0;
    const until = Date.now() + ms;
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.pause(); // never read: our receive buffer fills, then Postern's send buffer
      const pump = () => {
        while (Date.now() < until && !socket.destroyed) {
          sent += block.length;
          if (!socket.write(block)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
      setTimeout(() => resolve({ socket, sent }), ms);
    });
    socket.once('error', reject);
  });
}

/** Whole sessions, one after another, for `ms`: how many, and the slowest. */
async function ordinary(port: number, ms: number): Promise<{ sessions: number; slowestMs: number; codes: number[] }> {
  const until = Date.now() + ms;
  let sessions = 0;
  let slowestMs = 0;
  const codes: number[] = [];
  while (Date.now() < until) {
    const t0 = Date.now();
    const c = await SmtpClient.connect(port, { localAddress: '127.0.0.9' });
    const r = await sendMessage(c, { from: 'ok@example.org', to: ['rcpt@example.net'] });
    codes.push(r.code);
    await c.waitClose();
    slowestMs = Math.max(slowestMs, Date.now() - t0);
    sessions++;
    await sleep(100);
  }
  return { sessions, slowestMs, codes };
}

function yaml(port: number, backend: number, extra = ''): string {
  return `hostname: flood.test
workers: 1
listeners:
  - name: smtp
    listen: 127.0.0.1:${port}
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers:
    - address: 127.0.0.1:${backend}
limits:
  max_connections: 10000
  per_ip: { connections: 5000, rate: 100000/1s }
  timeouts: { command: 4s, data: 4s, greeting: 4s }
${extra}`;
}

describe('bounded memory under hostile clients', { timeout: 120_000 }, () => {
  let sink: Sink;
  let p: PosternProcess;
  let port: number;
  let dir: string;
  const rss = () => rssOf(p.child.pid!);
  before(async () => {
    sink = await startSink({ xclient: true });
    port = await freePort();
    dir = await mkdtemp(join(tmpdir(), 'postern-flood-'));
    await writeFile(join(dir, 'postern.yaml'), yaml(port, sink.address().port));
    p = startPosternProcess(['run', '-c', join(dir, 'postern.yaml')]);
    await p.waitRecord((r) => typeof r.msg === 'string' && r.msg.startsWith('listening on'));
    // Warm up: the first sessions load code and fill caches.
    await ordinary(port, 500);
  });
  after(async () => {
    await p.stop();
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('two clients pipelining EHLO and NOOP without reading: RSS stays bounded, mail still flows, both are timed out with records', async (t) => {
    const base = rss();
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 100);
    const FLOOD_MS = 6000;
    const [a, b, mail] = await Promise.all([
      flood(port, '127.0.0.2', 'EHLO flooder.test\r\n', FLOOD_MS),
      flood(port, '127.0.0.3', 'NOOP\r\n', FLOOD_MS),
      ordinary(port, FLOOD_MS),
    ]);
    // The flooders stop writing but stay connected, still not reading: Postern gives up on
    // them after its command timeout (4s) and ends each with a session record.
    const recA = await p.waitRecord((r) => r.event === 'session' && (r.client as { address: string }).address === '127.0.0.2', 15_000);
    const recB = await p.waitRecord((r) => r.event === 'session' && (r.client as { address: string }).address === '127.0.0.3', 15_000);
    clearInterval(sampler);
    a.socket.destroy();
    b.socket.destroy();
    const growth = peak - base;
    t.diagnostic(`flood: base ${(base / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB, sent ${((a.sent + b.sent) / MB).toFixed(1)} MB, ordinary sessions ${mail.sessions} (slowest ${mail.slowestMs} ms)`);
    // Without backpressure the same run grew by hundreds of MB (3.4 GB in 36 s reported).
    assert.ok(growth < 64 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB (base ${(base / MB).toFixed(1)} MB); flooders sent ${((a.sent + b.sent) / MB).toFixed(1)} MB`);
    assert.ok(mail.sessions >= 3 && mail.codes.every((c) => c === 250), `ordinary sessions: ${JSON.stringify(mail)}; postern said: ${JSON.stringify(p.records().filter((r) => r.level === "warn" || r.level === "error" || r.event === "backend" || (r.event === "session" && (r.client as { address: string }).address === "127.0.0.9" && r.close !== "quit")).slice(-5))}`);
    assert.ok(mail.slowestMs < 3000, `an ordinary session took ${mail.slowestMs} ms during the flood`);
    // Replies written one system call each held the event loop ~1.7 s: long enough for the
    // backend's health check (2 s) to fail and the ordinary client to get 451 (CI, stop 27).
    const down = p.records().filter((r) => r.event === 'backend' && r.state === 'down');
    assert.equal(down.length, 0, `the flood starved the health check: ${JSON.stringify(down)}`);
    assert.equal(recA.close, 'timeout');
    assert.equal(recB.close, 'timeout');
  });

  it('3,000 idle connections and slowloris clients in the command and DATA phases: RSS bounded, mail flows', async (t) => {
    const base = rss();
    const idle: net.Socket[] = [];
    for (let i = 0; i < 3000; i++) {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${10 + (i % 200)}` });
      s.on('error', () => undefined);
      idle.push(s);
      if (i % 200 === 199) await sleep(20);
    }
    // Slowloris: one byte of a command every 300 ms; one byte of a body every 300 ms.
    const slowCmd = await SmtpClient.connect(port, { localAddress: '127.0.0.4' });
    await slowCmd.waitReplies(1);
    const slowData = await SmtpClient.connect(port, { localAddress: '127.0.0.5' });
    await slowData.waitReplies(1);
    await slowData.cmd('EHLO slow.test');
    await slowData.cmd('MAIL FROM:<slow@example.org>');
    await slowData.cmd('RCPT TO:<rcpt@example.net>');
    assert.equal((await slowData.cmd('DATA')).code, 354);
    const drip = setInterval(() => {
      slowCmd.socket.write('E');
      slowData.socket.write('x');
    }, 300);
    let peak = rss();
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 100);
    const mail = await ordinary(port, 3000);
    clearInterval(drip);
    clearInterval(sampler);
    const growth = peak - base;
    t.diagnostic(`idle: base ${(base / MB).toFixed(1)} MB, peak ${(peak / MB).toFixed(1)} MB with 3,000 idle connections`);
    // W5 measures ~11 KB per idle plain connection; 3,000 of them with headroom.
    assert.ok(growth < 96 * MB, `RSS grew by ${(growth / MB).toFixed(1)} MB for 3,000 idle connections`);
    assert.ok(mail.sessions >= 3 && mail.codes.every((c) => c === 250), `ordinary sessions: ${JSON.stringify(mail)}; postern said: ${JSON.stringify(p.records().filter((r) => r.level === "warn" || r.level === "error" || r.event === "backend" || (r.event === "session" && (r.client as { address: string }).address === "127.0.0.9" && r.close !== "quit")).slice(-5))}`);
    for (const s of idle) s.destroy();
    // limits.min_data_rate (default 500 bytes/s): a body trickled a byte at a time loses a
    // little of its deadline with every read, so it ends within timeouts.data (4s) although
    // every read came well within it. The command-phase trickler never completes a line.
    const drip2 = setInterval(() => {
      if (!slowData.closed) slowData.socket.write('x');
    }, 300);
    try {
      await slowData.waitClose(8000);
      await slowCmd.waitClose(8000);
    } finally {
      clearInterval(drip2);
    }
    const recData = await p.waitRecord((r) => r.event === 'session' && (r.client as { address: string }).address === '127.0.0.5');
    assert.equal(recData.close, 'timeout');
    assert.ok((recData.duration_ms as number) < 12_000, `the DATA trickler lasted ${recData.duration_ms} ms`);
    const recCmd = await p.waitRecord((r) => r.event === 'session' && (r.client as { address: string }).address === '127.0.0.4');
    assert.equal(recCmd.close, 'timeout');
  });
});
