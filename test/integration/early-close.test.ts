// Connections that end before their session properly starts are answered and closed, and
// their descriptors go back (found under issue 26, with smtp-source and a socket census).
// Listeners allow half-open connections (a client may send QUIT and shut its side) and start
// paused, so two paths kept sockets open:
//  - a refusal (here: over limits.per_ip.connections): Postern's FIN after the 421 alone never
//    closed the socket, since the client's FIN was never read. One descriptor kept for good
//    per refusal;
//  - a PROXY header and the balancer's FIN in one write: the header reader took the FIN before
//    the session existed (admission pending), so the session greeted and waited for the
//    greeting timeout (5 of 6 tries).
// Real `postern run`, default cluster (workers: 2).
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { childPids, cliBuilt, startPosternProcess, type PosternProcess, type Rec } from '../helpers/postern-process.js';

/** Socket descriptors held by `pid` and its workers. */
function socketFds(pid: number): number {
  let n = 0;
  for (const p of [pid, ...childPids(pid)]) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${p}/fd/${fd}`).startsWith('socket:')) n++;
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return n;
}

/** Waits (at most `ms`) until `pid`'s tree holds at most `max` socket descriptors; returns how many it holds. */
async function socketFdsSettle(pid: number, max: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let n = socketFds(pid);
  while (n > max && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    n = socketFds(pid);
  }
  return n;
}

interface Visit {
  socket: net.Socket;
  /** What came until the first complete reply line. */
  first: Promise<string>;
  /** Resolves when Postern's FIN (or reset) arrived. */
  ended: Promise<void>;
}

function visit(port: number, from: string, send?: string | Buffer): Promise<Visit> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: our side stays open after Postern's FIN unless the test closes it.
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true });
    // What the client sends and its FIN, in one write.
    if (send !== undefined) socket.once('connect', () => socket.end(send));
    socket.on('error', () => undefined);
    let got = '';
    const first = new Promise<string>((r, j) => {
      const timer = setTimeout(() => j(new Error(`no reply within 5 s; got ${JSON.stringify(got)}`)), 5_000);
      socket.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('\r\n')) {
          clearTimeout(timer);
          r(got);
        }
      });
    });
    const ended = new Promise<void>((r) => {
      socket.once('end', r);
      socket.once('close', r);
    });
    socket.once('connect', () => resolve({ socket, first, ended }));
    socket.once('error', reject);
  });
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, j) => (timer = setTimeout(() => j(new Error(what)), ms)))]).finally(() => clearTimeout(timer));
}

const skip = !cliBuilt() && 'dist/cli.js missing: run `npm run build`';

describe('connections that end before their session starts are closed, and their descriptors go back (workers: 2)', { skip }, () => {
  let sink: Sink;
  let dir: string;
  let proc: PosternProcess;
  let port: number;
  let proxied: number;

  before(async () => {
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-refused-'));
    port = await freePort();
    proxied = await freePort();
    const file = join(dir, 'postern.yaml');
    await writeFile(
      file,
      `hostname: mx.refused.test
workers: 2
shutdown_grace: 1s
listeners:
  - { name: smtp, listen: 127.0.0.1:${port} }
  - { name: proxied, listen: 127.0.0.1:${proxied}, proxy_protocol: on, trusted_proxies: [127.0.0.0/8] }
limits: { per_ip: { connections: 1, rate: 1000000/1m } }
backends:
  identity: xclient
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
log: { level: info }
`,
    );
    proc = startPosternProcess(['run', '-c', file]);
    await proc.waitFor(/workers running/, 30_000);
  });
  after(async () => {
    const code = await proc?.stop();
    await sink?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    assert.equal(code ?? 0, 0, 'Postern stopped cleanly');
  });

  it('200 refusals from an address that holds its one connection: each gets 421 and no descriptor stays behind', async () => {
    const from = '127.0.0.71';
    const held = await visit(port, from);
    assert.match(await held.first, /^220 /);
    const pid = proc.child.pid!;
    const before = socketFds(pid);
    // 10 at a time: a per-IP refusal first waits up to 100 ms for a release from another worker.
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const v = await visit(port, from);
          assert.match(await v.first, /^421 /);
          // As mail clients do on a 421: close (our FIN), and wait for Postern's.
          v.socket.end();
          await bounded(v.ended, 5_000, `refusal ${batch * 10 + i}: Postern never closed`);
          v.socket.destroy();
        }),
      );
    }
    // Postern's side closes once the client's FIN is read: give the last ones a moment.
    const after = await socketFdsSettle(pid, before + 2, 5_000);
    // Before the fix: one more per refusal (+200).
    assert.ok(after <= before + 2, `socket descriptors ${before} before the refusals, ${after} after`);
    // Each refusal has its session record (the workers' lines may still be on their way).
    const refusedHere = (r: Rec) => r.event === 'session' && r.close === 'limit' && (r.client as { address?: string }).address === from;
    await proc.waitRecord(() => proc.records().filter(refusedHere).length >= 200, 10_000);
    assert.equal(proc.records().filter(refusedHere).length, 200);
    held.socket.end('QUIT\r\n');
    await bounded(held.ended, 5_000, 'the held session did not end after QUIT');
  });

  it('a refused client that never closes its side is let go by Postern (its FIN, then the close)', async () => {
    const from = '127.0.0.72';
    const held = await visit(port, from);
    assert.match(await held.first, /^220 /);
    const pid = proc.child.pid!;
    const before = socketFds(pid);
    const silent = await Promise.all(Array.from({ length: 5 }, () => visit(port, from)));
    for (const v of silent) assert.match(await v.first, /^421 /);
    // Postern's FIN comes with the 421; its socket closes after a linger of at most 2 s.
    for (const v of silent) await bounded(v.ended, 5_000, 'no FIN after the 421');
    const after = await socketFdsSettle(pid, before, 8_000);
    assert.ok(after <= before, `socket descriptors ${before} before, ${after} after 5 refused clients that kept their side open`);
    for (const v of silent) v.socket.destroy();
    held.socket.end('QUIT\r\n');
    await bounded(held.ended, 5_000, 'the held session did not end after QUIT');
  });

  /** Session records on `listener` from the balancer at `from`, waiting until there are `n`. */
  async function proxiedSessions(from: string, n: number): Promise<Rec[]> {
    const mine = (r: Rec) => r.event === 'session' && r.listener === 'proxied' && r.proxy !== null && String(r.proxy).startsWith(`${from}:`);
    await proc.waitRecord(() => proc.records().filter(mine).length >= n, 10_000);
    return proc.records().filter(mine);
  }

  it("a PROXY header and the balancer's FIN in one write, 40 times: every session sees the FIN and closes", async () => {
    const from = '127.0.0.73';
    const pid = proc.child.pid!;
    const before = socketFds(pid);
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const v = await visit(proxied, from, `PROXY TCP4 192.0.2.${i + 1} 127.0.0.1 40000 25\r\n`);
        assert.match(await v.first, /^220 /);
        // Before the fix: no FIN until the greeting timeout.
        await bounded(v.ended, 5_000, `session ${i}: Postern never closed after the client's FIN`);
        v.socket.destroy();
      }),
    );
    const sessions = await proxiedSessions(from, 40);
    assert.equal(sessions.length, 40);
    for (const s of sessions) {
      assert.equal(s.close, 'client_closed');
      assert.match((s.client as { address: string }).address, /^192\.0\.2\.\d+$/, 'the header named the client');
    }
    const after = await socketFdsSettle(pid, before, 5_000);
    assert.ok(after <= before, `socket descriptors ${before} before, ${after} after`);
  });

  it('a balancer that sends half a PROXY header and its FIN: proxy_header_invalid, and the socket closes, 10 times', async () => {
    const from = '127.0.0.74';
    for (let i = 0; i < 10; i++) {
      const v = await visit(proxied, from, 'PROXY TCP4 192.0.2.1');
      await bounded(v.ended, 5_000, `try ${i}: Postern never closed after the client's FIN`);
      v.socket.destroy();
    }
    const mine = (r: Rec) => r.event === 'session' && r.listener === 'proxied' && (r.client as { address?: string }).address === from;
    await proc.waitRecord(() => proc.records().filter(mine).length >= 10, 10_000);
    for (const s of proc.records().filter(mine)) assert.deepEqual(s.anomalies, ['proxy_header_invalid', 'no_quit']);
  });
});
