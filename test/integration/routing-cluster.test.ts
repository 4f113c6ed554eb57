// Routing (issue #24) in the default deployment: `postern run` with `workers: 2`, each worker
// holding its own compiled routes and pool set. Listener and recipient-domain routes (with the
// 452 split) must hold whichever worker takes a connection, and a SIGHUP that adds a pool must
// reach every worker. Sessions go on until both workers have served each kind.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink, type SinkMessage } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { cliBuilt, startPosternProcess, type PosternProcess, type Rec } from '../helpers/postern-process.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const pool = (port: number) => `{ identity: xclient, connect_timeout: 2s, health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }, servers: [ { address: "127.0.0.1:${port}" } ] }`;

describe('routing with workers: 2', { skip: !cliBuilt() && 'dist/cli.js missing: run `npm run build`' }, () => {
  let dir: string;
  let mx: Sink;
  let sub: Sink;
  let extra: Sink;
  let file: string;
  let ports: { mx: number; submission: number };
  let p: PosternProcess;
  const yaml = (more = '', routesFirst = '') => `hostname: route-cluster.test
workers: 2
listeners:
  - { name: mx, listen: 127.0.0.1:${ports.mx} }
  - { name: submission, listen: 127.0.0.1:${ports.submission} }
pools:
  mx: ${pool(mx.address().port)}
  sub: ${pool(sub.address().port)}
${more}
routes:
${routesFirst}
  - { listener: submission, pool: sub }
  - { recipient_domain: [lists.test, "*.lists.test"], pool: sub }
  - { pool: mx }
limits: { per_ip: { connections: 100, rate: 10000/1m } }
log: { level: info }
`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-route-cluster-'));
    [mx, sub, extra] = await Promise.all([startSink({ xclient: true }), startSink({ xclient: true }), startSink({ xclient: true })]);
    ports = { mx: await freePort(), submission: await freePort() };
    file = join(dir, 'postern.yaml');
    await writeFile(file, yaml());
    p = startPosternProcess(['run', '-c', file]);
    await p.waitFor(/2 workers running/, 30_000);
  });
  after(async () => {
    await p?.stop();
    await Promise.all([mx?.close(), sub?.close(), extra?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  const delivered = (s: Sink, rcpt: string): SinkMessage[] => s.messages.filter((m) => m.rcpts.includes(rcpt));
  const sessionsOf = (prefix: string): Rec[] => p.records().filter((r) => r.event === 'session' && String(r.helo).startsWith(prefix));
  /** The process that served a session: connection ids start with a per-process prefix. */
  const workersOf = (recs: Rec[]) => new Set(recs.map((r) => String(r.conn).slice(0, 6)));
  async function records(prefix: string, n: number): Promise<Rec[]> {
    const end = Date.now() + 10_000;
    while (sessionsOf(prefix).length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
    return sessionsOf(prefix);
  }

  /** One session: each transaction is a list of recipients and the RCPT codes they must get. */
  async function session(port: number, address: string, helo: string, transactions: [string, number][][]): Promise<void> {
    const c = await SmtpClient.connect(port, { localAddress: address });
    try {
      await c.waitReplies(1);
      assert.equal((await c.cmd(`EHLO ${helo}`)).code, 250);
      for (const tx of transactions) {
        assert.equal((await c.cmd('MAIL FROM:<s@example.org>')).code, 250);
        for (const [rcpt, code] of tx) assert.equal((await c.cmd(`RCPT TO:<${rcpt}>`)).code, code, `${helo}: RCPT ${rcpt}`);
        assert.equal((await c.cmd('DATA')).code, 354);
        assert.equal((await c.cmd(`Subject: ${helo}\r\n\r\nrouted\r\n.`)).code, 250, `${helo}: end of data`);
      }
      assert.equal((await c.cmd('QUIT')).code, 221);
    } finally {
      c.destroy();
    }
  }

  it('listener and recipient-domain routes, with the 452 split, whichever worker takes the session', async () => {
    // Rounds of the three kinds at once, at least 10 and until each kind was served by both
    // workers (the kernel may hand a burst to one), at most 40.
    const kindOf = (r: Rec) => Number(/^rc-(\d+)/.exec(String(r.helo))![1]) % 3;
    let n = 0;
    for (let round = 0; round < 40; round++) {
      await Promise.all(
        [0, 1, 2].map(async () => {
          const i = n++;
          const address = `127.0.0.${100 + (i % 100)}`;
          const helo = `rc-${i}.test`;
          if (i % 3 === 0) return session(ports.submission, address, helo, [[[`s${i}@example.net`, 250]]]);
          if (i % 3 === 1) {
            // lists.test binds sub at the first RCPT; example.net is another pool's: 452, then its own transaction.
            return session(ports.mx, address, helo, [
              [[`l${i}@lists.test`, 250], [`m${i}@example.net`, 452], [`l${i}@x.lists.test`, 250]],
              [[`m${i}@example.net`, 250]],
            ]);
          }
          return session(ports.mx, address, helo, [[[`d${i}@example.net`, 250]]]);
        }),
      );
      const recs = await records('rc-', n);
      if (round >= 9 && [0, 1, 2].every((k) => workersOf(recs.filter((r) => kindOf(r) === k)).size === 2)) break;
    }
    for (let i = 0; i < n; i++) {
      const copies = (rcpt: string) => `${rcpt}: mx ${delivered(mx, rcpt).length}, sub ${delivered(sub, rcpt).length}`;
      if (i % 3 === 0) assert.equal(copies(`s${i}@example.net`), `s${i}@example.net: mx 0, sub 1`);
      else if (i % 3 === 1) {
        assert.deepEqual(delivered(sub, `l${i}@lists.test`).map((m) => m.rcpts), [[`l${i}@lists.test`, `l${i}@x.lists.test`]]);
        assert.equal(copies(`m${i}@example.net`), `m${i}@example.net: mx 1, sub 0`);
      } else assert.equal(copies(`d${i}@example.net`), `d${i}@example.net: mx 1, sub 0`);
    }
    const recs = await records('rc-', n);
    assert.equal(recs.length, n);
    for (const k of [0, 1, 2]) assert.equal(workersOf(recs.filter((r) => kindOf(r) === k)).size, 2, `kind ${k}: served by both workers`);
    const txs = p.records().filter((r) => r.event === 'transaction' && recs.some((s) => s.conn === r.conn));
    assert.equal(txs.length, n + n / 3, 'one transaction per session, two for the split ones');
    for (const t of txs) assert.ok(t.pool === 'mx' || t.pool === 'sub', JSON.stringify(t));
  });

  /**
   * Sessions on mx one after another, at least 8 and until both workers have served one (the
   * kernel hands a burst of connections to whichever worker wakes first): each must reach
   * `want`, once. At most 64; their session records.
   */
  async function untilBothWorkers(prefix: string, want: Sink): Promise<Rec[]> {
    for (let i = 0; i < 64; i++) {
      const rcpt = `${prefix}${i}@example.net`;
      await session(ports.mx, `127.0.0.${140 + (i % 60)}`, `${prefix}-${i}.test`, [[[rcpt, 250]]]);
      const copies = [mx, sub, extra].map((k) => delivered(k, rcpt).length);
      assert.deepEqual(copies, [mx, sub, extra].map((k) => (k === want ? 1 : 0)), `${rcpt}: copies at mx/sub/extra`);
      const recs = await records(`${prefix}-`, i + 1);
      if (i >= 7 && workersOf(recs).size === 2) return recs;
    }
    throw new Error(`64 sessions and one worker served them all: ${[...workersOf(sessionsOf(`${prefix}-`))].join(',')}`);
  }

  it('SIGHUP adding a pool and a route reaches every worker; removing it again sends sessions back', async () => {
    const reloads = () => p.records().filter((r) => r.event === 'reload').length;
    const hup = async (text: string) => {
      const had = reloads();
      await writeFile(file, text);
      p.child.kill('SIGHUP');
      const end = Date.now() + 30_000;
      while (reloads() === had && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
      assert.equal(reloads(), had + 1, `a reload record: ${p.output().slice(-1500)}`);
    };
    await hup(yaml(`  extra: ${pool(extra.address().port)}`, '  - { listener: mx, pool: extra }'));
    const added = await untilBothWorkers('hup', extra);
    for (const r of added) assert.equal((r.backend as Rec).pool, 'extra');
    // And back: the pool is gone from every worker; mx takes the listener again.
    await hup(yaml());
    const back = await untilBothWorkers('back', mx);
    for (const r of back) assert.equal((r.backend as Rec).pool, 'mx');
  });
});
