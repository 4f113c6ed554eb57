// Routing (issue #24) with real Postfix instances as the two pools: each pool is a Postfix
// smtpd (XCLIENT from Postern) that relays what it accepts to a sink of its own, so a copy
// reaching a sink went through that pool's Postfix. Listener routing (mx → the mx pool,
// submission → the submission pool), and recipient-domain routing with the 452 split, Exim's
// smtp transport as the sender: every recipient delivered exactly once, through the right pool.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink, type SinkMessage } from '../../src/sink/index.js';
import { eximSkipReason, startExim, type EximInstance } from '../helpers/exim.js';
import { clientLines, postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startPostern, type TestPostern } from '../helpers/postern.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const skip = (!postfixAvailable() && 'postfix not installed or not root') || (!swaksAvailable() && 'swaks not installed') || false;

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A Postfix smtpd that takes XCLIENT from Postern and relays everything to `sink`. */
const relayingPostfix = (name: string, sink: Sink): Promise<PostfixInstance> =>
  startPostfix({
    extraMain: {
      myhostname: `${name}.pool.test`,
      relayhost: `[127.0.0.1]:${sink.address().port}`,
      default_transport: 'smtp',
      relay_transport: 'smtp',
      smtp_tls_security_level: 'none',
    },
  });

describe('routing with real Postfix instances as the two pools', { skip }, () => {
  let mxSink: Sink;
  let subSink: Sink;
  let mxPf: PostfixInstance;
  let subPf: PostfixInstance;
  let p: TestPostern;
  const port = (name: string) => p.postern.addresses()[name]!.port;
  const delivered = (s: Sink, rcpt: string): SinkMessage[] => s.messages.filter((m) => m.rcpts.includes(rcpt));

  before(async () => {
    [mxSink, subSink] = await Promise.all([startSink(), startSink()]);
    [mxPf, subPf] = await Promise.all([relayingPostfix('mx', mxSink), relayingPostfix('sub', subSink)]);
    const pool = (pf: PostfixInstance) =>
      `{ identity: xclient, connect_timeout: 5s, health_check: { interval: 2s, timeout: 5s, rise: 1, fall: 2 }, servers: [ { address: "127.0.0.1:${pf.port}" } ] }`;
    p = await startPostern(`hostname: route-pf.test
listeners:
  - { name: mx, listen: 127.0.0.1:0 }
  - { name: submission, listen: 127.0.0.1:0 }
pools:
  mx: ${pool(mxPf)}
  sub: ${pool(subPf)}
routes:
  - { listener: submission, pool: sub }
  - { recipient_domain: [lists.test, "*.lists.test"], pool: sub }
  - { pool: mx }
limits: { per_ip: { connections: 100, rate: 10000/1m } }
`);
  });
  after(async () => {
    await p?.stop();
    await Promise.all([mxPf?.stop(), subPf?.stop()]);
    await Promise.all([mxSink?.close(), subSink?.close()]);
  });

  it('listener routing: port mx goes through the mx Postfix, port submission through the submission Postfix; each names the real client', async () => {
    const mx = await swaks(['--server', `127.0.0.1:${port('mx')}`, '--local-interface', '127.0.0.61', '--ehlo', 'l-mx.test', '--from', 'a@example.org', '--to', 'lmx@example.net']);
    assert.equal(mx.code, 0, mx.transcript);
    const sub = await swaks(['--server', `127.0.0.1:${port('submission')}`, '--local-interface', '127.0.0.62', '--ehlo', 'l-sub.test', '--from', 'a@example.org', '--to', 'lsub@example.net']);
    assert.equal(sub.code, 0, sub.transcript);
    await until(() => delivered(mxSink, 'lmx@example.net').length + delivered(subSink, 'lsub@example.net').length === 2, 'both messages relayed by their pools');
    assert.equal(delivered(subSink, 'lmx@example.net').length, 0);
    assert.equal(delivered(mxSink, 'lsub@example.net').length, 0);
    // Postfix logs the client Postern told it (XCLIENT), not Postern's own address.
    assert.ok(clientLines(mxPf.readLog()).some((l) => l.address === '127.0.0.61'), mxPf.readLog().slice(-2000));
    assert.ok(clientLines(subPf.readLog()).some((l) => l.address === '127.0.0.62'), subPf.readLog().slice(-2000));
  });

  it("recipient-domain routing with the 452 split, Exim's smtp transport sending: 3 domains, 2 pools, every copy once through the right Postfix", async (t) => {
    const why = await eximSkipReason();
    if (why) return t.skip(why);
    let ex: EximInstance | null = null;
    try {
      ex = await startExim({ relayTo: { host: '127.0.0.1', port: port('mx') }, hostsProxy: '192.0.2.1', extraMain: 'retry_interval_max = 2s' });
      const rcpts = ['pf1@lists.test', 'pf2@example.net', 'pf3@a.lists.test'];
      const r = await swaks(['--server', `127.0.0.1:${ex.port}`, '--ehlo', 'injector.test', '--from', 'ex@example.org', '--to', rcpts.join(',')]);
      assert.equal(r.code, 0, r.transcript);
      // Postfix offers CHUNKING, so Exim pipelines BDAT LAST and QUIT: the recipient that got
      // 452 cannot follow on the same connection, and waits in Exim's queue for its next run.
      await ex.waitForLog(/== pf2@example\.net .*452 4\.5\.3/, 30_000);
      await ex.queueRun();
      await until(() => rcpts.every((x) => delivered(mxSink, x).length + delivered(subSink, x).length > 0), 'every recipient relayed', 45_000).catch((err: Error) => {
        const records = p.records.filter((r) => r.event !== "backend").slice(-12);
        throw new Error(`${err.message}\nexim: ${ex!.readLog().slice(-3000)}\npostern: ${JSON.stringify(records)}\nmx postfix: ${mxPf.readLog().slice(-1500)}\nsub postfix: ${subPf.readLog().slice(-1500)}`);
      });
      await new Promise((res) => setTimeout(res, 1000)); // a duplicate would show by now
      const matrix = rcpts.map((x) => `${x}: mx ${delivered(mxSink, x).length}, sub ${delivered(subSink, x).length}`);
      t.diagnostic(`delivery matrix through real Postfix pools (recipient: copies per pool): ${matrix.join('; ')}`);
      assert.deepEqual(matrix, ['pf1@lists.test: mx 0, sub 1', 'pf2@example.net: mx 1, sub 0', 'pf3@a.lists.test: mx 0, sub 1']);
      const split = p.records.filter((r) => r.event === 'transaction' && r.listener === 'mx');
      t.diagnostic(`Postern transactions on mx: ${split.map((r) => `${String(r.pool)}:${String(r.result)}`).join(', ')}`);
    } finally {
      await ex?.stop();
    }
  });
});
