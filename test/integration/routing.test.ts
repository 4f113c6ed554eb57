// Routing to named pools (issue #24), end to end, with real clients (swaks, Postfix's smtp
// client, Exim's smtp transport): listener, SNI (a certificate per tenant, one chosen by
// tls.certificates[].names), login, recipient domain with the 452 split, and a reload adding
// and removing a pool under load while a session is under way on it.
// Twice: with built-in sinks as the pools, and with real Postfix instances as the pools, each
// relaying what it accepts to a sink of its own (so a copy at a sink went through that pool's
// Postfix, which logs the client Postern named by XCLIENT).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { parseConfig } from '../../src/config/index.js';
import { startSink, type Sink, type SinkMessage } from '../../src/sink/index.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { eximSkipReason, startExim, type EximInstance } from '../helpers/exim.js';
import { clientLines, postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const pool = (port: number) => `{ identity: xclient, connect_timeout: 2s, health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }, servers: [ { address: "127.0.0.1:${port}" } ] }`;


async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
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
      // Relay at once: a deferred copy would come late, not twice.
      queue_run_delay: '1s',
      minimal_backoff_time: '1s',
      maximal_backoff_time: '2s',
    },
  });

const swaksSkip = !swaksAvailable() && 'swaks not installed';
const postfixSkip = swaksSkip || (!postfixAvailable() && 'postfix not installed or not root');

for (const pools of ['sinks', 'postfix'] as const) describe(`routing to named pools (pools: ${pools === 'sinks' ? 'built-in sinks' : 'real Postfix instances relaying to sinks'})`, { skip: pools === 'sinks' ? swaksSkip : postfixSkip }, () => {
  let dir: string;
  let pki: TestPki;
  let mx: Sink;
  let sub: Sink;
  let extra: Sink;
  /** The pools' Postfix instances (pools: postfix), by pool name. */
  const relays = new Map<string, PostfixInstance>();
  /** The port a pool's server listens on: its sink's, or its Postfix's. */
  const poolPort = (name: string, sink: Sink): number => relays.get(name)?.port ?? sink.address().port;
  let p: TestPostern;
  let yaml: (more?: string, routesFirst?: string) => string;
  const port = (name: string) => p.postern.addresses()[name]!.port;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-routing-'));
    pki = await makePki();
    const a = await pki.leaf('tenant-a', 'ecdsa', ['a.tenant.test']);
    // Its SAN says nothing of b.tenant.test: tls.certificates[].names does.
    const b = await pki.leaf('tenant-b', 'ecdsa', ['unrelated.example']);
    await writeFile(join(dir, 'passwd'), `alice@a.test:${await bcrypt.hash('alice-pw', 4)}\nbob@b.test:${await bcrypt.hash('bob-pw', 4)}\n`);
    await writeFile(join(dir, 'lists.domains'), '# list domains\nlists.test\n*.lists.test\n');
    [mx, sub, extra] = await Promise.all([startSink({ xclient: true }), startSink({ xclient: true }), startSink({ xclient: true })]);
    if (pools === 'postfix') {
      const started = await Promise.all([relayingPostfix('mx', mx), relayingPostfix('sub', sub), relayingPostfix('extra', extra)]);
      started.forEach((pf, i) => relays.set(['mx', 'sub', 'extra'][i]!, pf));
    }
    yaml = (more = '', routesFirst = '') => `hostname: route.test
listeners:
  - { name: mx, listen: 127.0.0.1:0, tls: starttls }
  - { name: submission, listen: 127.0.0.1:0, auth: optional }
tls:
  certificates:
    - { cert: ${a.cert}, key: ${a.key} }
    - { cert: ${b.cert}, key: ${b.key}, names: [b.tenant.test] }
pools:
  mx: ${pool(poolPort('mx', mx))}
  sub: ${pool(poolPort('sub', sub))}
${more}
routes:
${routesFirst}
  - { listener: submission, auth: ["*@b.test"], pool: mx }
  - { listener: submission, pool: sub }
  - { sni: b.tenant.test, pool: sub }
  - { recipient_domain: { file: ${join(dir, 'lists.domains')} }, pool: sub }
  - { pool: mx }
auth:
  plaintext: true
  verifier: { type: file, path: ${join(dir, 'passwd')} }
limits: { per_ip: { connections: 100, rate: 10000/1m } }
log: { level: info }
`;
    p = await startPostern(yaml());
  });
  after(async () => {
    await p?.stop();
    await Promise.all([...relays.values()].map((pf) => pf.stop()));
    await Promise.all([mx?.close(), sub?.close(), extra?.close()]);
    await pki?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** The session record of the n-th session that said EHLO `helo`. */
  const sessionOf = (helo: string): Promise<LogRecord> => p.waitFor((r) => r.event === 'session' && r.helo === helo, 10_000);
  const delivered = (s: Sink, rcpt: string): SinkMessage[] => s.messages.filter((m) => m.rcpts.includes(rcpt));
  /**
   * Waits until each recipient has reached a sink. Through Postfix that happens after the
   * client's 250 (from its queue), then a moment more lets a duplicate show.
   */
  const arrived = async (rcpts: string[], ms = 30_000): Promise<void> => {
    if (pools === 'sinks') return;
    await until(() => rcpts.every((x) => [mx, sub, extra].some((k) => delivered(k, x).length > 0)), `${rcpts.join(', ')} relayed by their pools`, ms);
    await new Promise((res) => setTimeout(res, 500));
  };

  it('routes by listener: mx to the mx pool, submission to the sub pool', async () => {
    const r1 = await swaks(['--server', `127.0.0.1:${port('mx')}`, '--ehlo', 'l1.test', '--from', 's@example.org', '--to', 'l1@example.net']);
    assert.equal(r1.code, 0, r1.transcript);
    const r2 = await swaks(['--server', `127.0.0.1:${port('submission')}`, '--ehlo', 'l2.test', '--from', 's@example.org', '--to', 'l2@example.net']);
    assert.equal(r2.code, 0, r2.transcript);
    await arrived(['l1@example.net', 'l2@example.net']);
    assert.equal(delivered(mx, 'l1@example.net').length, 1);
    assert.equal(delivered(sub, 'l2@example.net').length, 1);
    assert.equal(delivered(sub, 'l1@example.net').length + delivered(mx, 'l2@example.net').length, 0);
    const [s1, s2] = await Promise.all([sessionOf('l1.test'), sessionOf('l2.test')]);
    assert.deepEqual([(s1.backend as LogRecord).pool, (s1.backend as LogRecord).route], ['mx', 4]);
    assert.deepEqual([(s2.backend as LogRecord).pool, (s2.backend as LogRecord).route], ['sub', 1]);
    const tx = await p.waitFor((r) => r.event === 'transaction' && r.conn === s2.conn);
    assert.equal(tx.pool, 'sub');
    // Each pool's Postfix logs the client Postern named (XCLIENT), not Postern's own port.
    for (const [name, rec] of [['mx', s1], ['sub', s2]] as const) {
      const pf = relays.get(name);
      const client = rec.client as { address: string; port: number };
      if (pf) assert.ok(clientLines(pf.readLog()).some((l) => l.address === client.address && l.port === client.port), `${name}: ${pf.readLog().slice(-2000)}`);
    }
  });

  it('routes by SNI: each tenant gets its certificate and its pool', async () => {
    const tenant = async (sni: string, helo: string) => {
      const r = await swaks(['--server', `127.0.0.1:${port('mx')}`, '--tls', '--tls-sni', sni, '--tls-get-peer-cert', '--ehlo', helo, '--from', 's@example.org', '--to', `${helo}@example.net`]);
      assert.equal(r.code, 0, r.transcript);
      return r.transcript;
    };
    const ta = await tenant('a.tenant.test', 'sni-a.test');
    const tb = await tenant('b.tenant.test', 'sni-b.test');
    // The certificate: tenant b's is chosen by its configured name, not its SAN.
    assert.match(ta, /peer DN=".*CN=a\.tenant\.test"/);
    assert.match(tb, /peer DN=".*CN=unrelated\.example"/);
    await arrived(['sni-a.test@example.net', 'sni-b.test@example.net']);
    assert.equal(delivered(mx, 'sni-a.test@example.net').length, 1);
    assert.equal(delivered(sub, 'sni-b.test@example.net').length, 1);
    const sb = await sessionOf('sni-b.test');
    assert.equal((sb.tls as LogRecord).sni, 'b.tenant.test');
    assert.deepEqual([(sb.backend as LogRecord).pool, (sb.backend as LogRecord).route], ['sub', 2]);
  });

  it('routes by login: *@b.test to mx, other users of submission to sub', async () => {
    const login = async (user: string, pw: string, helo: string) => {
      const r = await swaks(['--server', `127.0.0.1:${port('submission')}`, '--auth', 'PLAIN', '--auth-user', user, '--auth-password', pw, '--ehlo', helo, '--from', user, '--to', `${helo}@example.net`]);
      assert.equal(r.code, 0, r.transcript);
    };
    await login('bob@b.test', 'bob-pw', 'auth-bob.test');
    await login('alice@a.test', 'alice-pw', 'auth-alice.test');
    await arrived(['auth-bob.test@example.net', 'auth-alice.test@example.net']);
    assert.equal(delivered(mx, 'auth-bob.test@example.net').length, 1);
    assert.equal(delivered(sub, 'auth-alice.test@example.net').length, 1);
    const sb = await sessionOf('auth-bob.test');
    assert.deepEqual([(sb.backend as LogRecord).pool, (sb.backend as LogRecord).route, (sb.auth as LogRecord).user], ['mx', 0, 'bob@b.test']);
  });

  it('routes by recipient domain at the first RCPT; a RCPT for the other pool gets 452 4.5.3 and goes in the next transaction', async () => {
    const c = await SmtpClient.connect(port('mx'), { localAddress: '127.0.0.21' });
    try {
      await c.waitReplies(1);
      assert.equal((await c.cmd('EHLO split.test')).code, 250);
      // MAIL is Postern's own answer while the route waits for a recipient.
      assert.equal((await c.cmd('MAIL FROM:<s@example.org>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<one@lists.test>')).code, 250);
      const other = await c.cmd('RCPT TO:<two@example.net>');
      assert.equal(other.code, 452);
      assert.match(other.raw.toString(), /^452 4\.5\.3 /);
      assert.equal((await c.cmd('RCPT TO:<three@x.lists.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      assert.equal((await c.cmd('Subject: split\r\n\r\nfirst\r\n.')).code, 250);
      // The next transaction: its first RCPT routes it to mx (Postern leaves sub for mx).
      assert.equal((await c.cmd('MAIL FROM:<s@example.org>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<two@example.net>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      assert.equal((await c.cmd('Subject: split\r\n\r\nsecond\r\n.')).code, 250);
      // A third, all to sub: one pool, no 452, one message.
      assert.equal((await c.cmd('MAIL FROM:<s@example.org>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<four@lists.test>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<five@y.lists.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      assert.equal((await c.cmd('Subject: split\r\n\r\nthird\r\n.')).code, 250);
      assert.equal((await c.cmd('QUIT')).code, 221);
    } finally {
      c.destroy();
    }
    await arrived(['one@lists.test', 'three@x.lists.test', 'two@example.net', 'four@lists.test', 'five@y.lists.test']);
    assert.deepEqual(delivered(sub, 'one@lists.test').map((m) => m.rcpts), [['one@lists.test', 'three@x.lists.test']]);
    assert.deepEqual(delivered(mx, 'two@example.net').map((m) => m.rcpts), [['two@example.net']]);
    assert.deepEqual(delivered(sub, 'four@lists.test').map((m) => m.rcpts), [['four@lists.test', 'five@y.lists.test']]);
    assert.equal(delivered(sub, 'two@example.net').length + delivered(mx, 'one@lists.test').length, 0);
    const s = await sessionOf('split.test');
    const txs = p.records.filter((r) => r.event === 'transaction' && r.conn === s.conn);
    assert.deepEqual(txs.map((t) => [t.pool, t.rcpts]), [['sub', 2], ['mx', 1], ['sub', 2]]);
    // The first transaction's record lists the 452 Postern gave.
    const first = txs[0]!.recipients as { address: string; code: number }[];
    assert.deepEqual(first.map((r) => [r.address, r.code]), [['one@lists.test', 250], ['two@example.net', 452], ['three@x.lists.test', 250]]);
  });

  it('a pipelining client: the switch to another pool waits for the reply the old backend owes', async () => {
    const c = await SmtpClient.connect(port('mx'), { localAddress: '127.0.0.24' });
    try {
      await c.waitReplies(1);
      assert.equal((await c.cmd('EHLO pipe.test')).code, 250);
      const first = await c.send('MAIL FROM:<s@example.org>\r\nRCPT TO:<p1@lists.test>\r\nRCPT TO:<p2@example.net>\r\nDATA\r\n', 4);
      assert.deepEqual(first.map((r) => r.code), [250, 250, 452, 354]);
      // The end of the first message, and the whole next transaction, in one write.
      const second = await c.send('Subject: p\r\n\r\none\r\n.\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<p2@example.net>\r\nDATA\r\n', 4);
      assert.deepEqual(second.map((r) => r.code), [250, 250, 250, 354]);
      const third = await c.send('Subject: p\r\n\r\ntwo\r\n.\r\nQUIT\r\n', 2);
      assert.deepEqual(third.map((r) => r.code), [250, 221]);
    } finally {
      c.destroy();
    }
    await arrived(['p1@lists.test', 'p2@example.net']);
    assert.deepEqual(delivered(sub, 'p1@lists.test').map((m) => m.rcpts), [['p1@lists.test']]);
    assert.deepEqual(delivered(mx, 'p2@example.net').map((m) => m.rcpts), [['p2@example.net']]);
    assert.equal(delivered(sub, 'p2@example.net').length, 0);
  });

  it("Postfix's smtp client: 3 domains to 2 pools in one message, every copy delivered once at the right pool", { skip: !postfixAvailable() && 'postfix not installed or not root' }, async (t) => {
    let pf: PostfixInstance | null = null;
    try {
      pf = await startPostfix({
        extraMain: {
          myhostname: 'pf-sender.test',
          relayhost: `[127.0.0.1]:${port('mx')}`,
          default_transport: 'smtp',
          relay_transport: 'smtp',
          smtp_tls_security_level: 'none',
          smtp_helo_name: 'pf-sender.test',
          // Should a 452 ever send recipients back to the queue, they come again soon.
          minimal_backoff_time: '2s',
          maximal_backoff_time: '4s',
          queue_run_delay: '2s',
        },
      });
      const rcpts = ['pf1@lists.test', 'pf2@example.net', 'pf3@a.lists.test'];
      const r = await swaks(['--server', `127.0.0.1:${pf.port}`, '--ehlo', 'injector.test', '--from', 'pf@example.org', '--to', rcpts.join(',')]);
      assert.equal(r.code, 0, r.transcript);
      await until(() => rcpts.every((x) => delivered(mx, x).length + delivered(sub, x).length > 0), 'every recipient delivered', 45_000);
      // Give a duplicate the chance to show.
      await new Promise((res) => setTimeout(res, 500));
      const matrix = rcpts.map((x) => `${x}: mx ${delivered(mx, x).length}, sub ${delivered(sub, x).length}`);
      t.diagnostic(`delivery matrix (recipient: copies per pool): ${matrix.join('; ')}`);
      assert.deepEqual(matrix, ['pf1@lists.test: mx 0, sub 1', 'pf2@example.net: mx 1, sub 0', 'pf3@a.lists.test: mx 0, sub 1']);
      const log = pf.readLog();
      t.diagnostic(`postfix: ${log.split('\n').filter((l) => /status=|452/.test(l)).map((l) => l.replace(/^.*?: /, '')).join(' | ')}`);
    } finally {
      await pf?.stop();
    }
  });

  it("Exim's smtp transport: 3 domains to 2 pools in one message, every copy delivered once at the right pool", async (t) => {
    const skip = await eximSkipReason();
    if (skip) return t.skip(skip);
    let ex: EximInstance | null = null;
    try {
      ex = await startExim({ relayTo: { host: '127.0.0.1', port: port('mx') }, hostsProxy: '192.0.2.1', extraMain: 'retry_interval_max = 2s' });
      const rcpts = ['ex1@lists.test', 'ex2@example.net', 'ex3@b.lists.test'];
      const r = await swaks(['--server', `127.0.0.1:${ex.port}`, '--ehlo', 'injector.test', '--from', 'ex@example.org', '--to', rcpts.join(',')]);
      assert.equal(r.code, 0, r.transcript);
      if (pools === 'postfix') {
        // Postfix offers CHUNKING, so Exim pipelines BDAT LAST and QUIT: the recipient that got
        // 452 cannot follow on the same connection, and waits in Exim's queue for its next run.
        await ex.waitForLog(/== ex2@example\.net .*452 4\.5\.3/, 30_000);
        await ex.queueRun();
      }
      await until(() => rcpts.every((x) => delivered(mx, x).length + delivered(sub, x).length > 0), 'every recipient delivered', 45_000);
      await new Promise((res) => setTimeout(res, 500));
      const matrix = rcpts.map((x) => `${x}: mx ${delivered(mx, x).length}, sub ${delivered(sub, x).length}`);
      t.diagnostic(`delivery matrix (recipient: copies per pool): ${matrix.join('; ')}`);
      assert.deepEqual(matrix, ['ex1@lists.test: mx 0, sub 1', 'ex2@example.net: mx 1, sub 0', 'ex3@b.lists.test: mx 0, sub 1']);
      t.diagnostic(`exim: ${ex.readLog().split('\n').filter((l) => /=>|==|452/.test(l)).map((l) => l.replace(/^\S+ \S+ /, '')).join(' | ')}`);
    } finally {
      await ex?.stop();
    }
  });

  it('reload: a new pool takes new sessions, a removed pool drains its session under way', async () => {
    // A session bound to sub, mid-transaction, across two reloads.
    const c = await SmtpClient.connect(port('submission'), { localAddress: '127.0.0.22' });
    try {
      await c.waitReplies(1);
      assert.equal((await c.cmd('EHLO drain.test')).code, 250);
      assert.equal((await c.cmd('MAIL FROM:<s@example.org>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<drain@example.net>')).code, 250);
      // Add pool extra, routed from listener mx ahead of the rest.
      const extraPool = `  extra: ${pool(poolPort('extra', extra))}`;
      await p.postern.reload(parseConfig(yaml(extraPool, '  - { listener: mx, pool: extra }'), 'test.yaml'));
      const r1 = await swaks(['--server', `127.0.0.1:${port('mx')}`, '--ehlo', 'reload1.test', '--from', 's@example.org', '--to', 'reload1@example.net']);
      assert.equal(r1.code, 0, r1.transcript);
      await arrived(['reload1@example.net']);
      assert.equal(delivered(extra, 'reload1@example.net').length, 1);
      // Remove sub (submission now goes to mx): the session on sub keeps it.
      const without = yaml(extraPool, '  - { listener: mx, pool: extra }')
        .replace(/  sub: .*\n/, '')
        .replace(/pool: sub/g, 'pool: mx');
      // Under load: sessions on both listeners while the pool goes; none may be lost.
      const load = Array.from({ length: 8 }, (_, i) =>
        swaks(['--server', `127.0.0.1:${port(i % 2 ? 'mx' : 'submission')}`, '--ehlo', `load${i}.test`, '--from', 's@example.org', '--to', `load${i}@example.net`]),
      );
      await new Promise((res) => setTimeout(res, 30));
      await p.postern.reload(parseConfig(without, 'test.yaml'));
      assert.equal(p.postern.pools.get('sub'), undefined);
      const done = await Promise.all(load);
      done.forEach((r, i) => assert.equal(r.code, 0, `load${i}: ${r.transcript}`));
      await arrived(Array.from({ length: 8 }, (_, i) => `load${i}@example.net`));
      for (let i = 0; i < 8; i++) {
        const copies = [mx, sub, extra].map((k) => delivered(k, `load${i}@example.net`).length);
        assert.equal(copies.reduce((a, b) => a + b), 1, `load${i}: copies per pool ${copies.join('/')}`);
      }
      const r2 = await swaks(['--server', `127.0.0.1:${port('submission')}`, '--ehlo', 'reload2.test', '--from', 's@example.org', '--to', 'reload2@example.net']);
      assert.equal(r2.code, 0, r2.transcript);
      await arrived(['reload2@example.net']);
      assert.equal(delivered(mx, 'reload2@example.net').length, 1);
      assert.equal((await c.cmd('DATA')).code, 354);
      assert.equal((await c.cmd('Subject: drain\r\n\r\nstill here\r\n.')).code, 250);
      assert.equal((await c.cmd('QUIT')).code, 221);
    } finally {
      c.destroy();
    }
    await arrived(['drain@example.net']);
    assert.equal(delivered(sub, 'drain@example.net').length, 1, 'the session under way finished on its old pool');
    const s = await sessionOf('drain.test');
    assert.equal((s.backend as LogRecord).pool, 'sub');
  });
});

describe('routing without a default pool', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(`hostname: noroute.test
listeners:
  - { name: smtp, listen: 127.0.0.1:0 }
pools:
  lists: ${pool(sink.address().port)}
routes:
  - { recipient_domain: [lists.test], pool: lists }
log: { level: info }
`);
  });
  after(async () => {
    await p?.stop();
    await sink?.close();
  });

  it('a recipient no route takes gets 451 4.3.0 and a no_route record; the others go through', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.23' });
    try {
      await c.waitReplies(1);
      assert.equal((await c.cmd('EHLO none.test')).code, 250);
      assert.equal((await c.cmd('MAIL FROM:<s@example.org>')).code, 250);
      const refused = await c.cmd('RCPT TO:<x@elsewhere.test>');
      assert.match(refused.raw.toString(), /^451 4\.3\.0 noroute\.test No route/);
      // Nothing accepted yet: DATA has no valid recipient.
      assert.equal((await c.cmd('DATA')).code, 554);
      assert.equal((await c.cmd('RCPT TO:<y@lists.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      assert.equal((await c.cmd('Subject: t\r\n\r\nx\r\n.')).code, 250);
      assert.equal((await c.cmd('QUIT')).code, 221);
    } finally {
      c.destroy();
    }
    assert.deepEqual(sink.messages.map((m) => m.rcpts), [['y@lists.test']]);
    const rec = await p.waitFor((r) => r.event === 'no_route');
    assert.equal(rec.rcpt, 'x@elsewhere.test');
  });
});

for (const pools of ['sinks', 'postfix'] as const) describe(`auth_http Auth-Server routes ahead of routes: (pools: ${pools === 'sinks' ? 'built-in sinks' : 'real Postfix instances relaying to sinks'})`, { skip: pools === 'sinks' ? swaksSkip : postfixSkip }, () => {
  let routed: Sink;
  let told: Sink;
  const relays: PostfixInstance[] = [];
  let server: http.Server;
  let p: TestPostern;
  before(async () => {
    [routed, told] = await Promise.all([startSink({ xclient: true }), startSink({ xclient: true })]);
    if (pools === 'postfix') relays.push(...(await Promise.all([relayingPostfix('routed', routed), relayingPostfix('told', told)])));
    const [routedPort, toldPort] = relays.length ? relays.map((r) => r.port) : [routed.address().port, told.address().port];
    // Carol is sent to `told` by the auth server; dave gets no Auth-Server.
    server = http.createServer((req, res) => {
      const user = String(req.headers['auth-user'] ?? '');
      res.writeHead(200, user === 'carol' ? { 'Auth-Status': 'OK', 'Auth-Server': '127.0.0.1', 'Auth-Port': String(toldPort) } : { 'Auth-Status': 'OK' });
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    p = await startPostern(`hostname: authhttp.test
listeners:
  - { name: submission, listen: 127.0.0.1:0, auth: required }
pools:
  sub: ${pool(routedPort!)}
routes:
  - { listener: submission, pool: sub }
auth:
  plaintext: true
  verifier: { type: http, url: "http://127.0.0.1:${(server.address() as AddressInfo).port}/auth" }
log: { level: info }
`);
  });
  after(async () => {
    await p?.stop();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await Promise.all(relays.map((r) => r.stop()));
    await Promise.all([routed?.close(), told?.close()]);
  });

  it('carol goes where the auth server says; dave goes where the route says', async () => {
    for (const user of ['carol', 'dave']) {
      const r = await swaks(['--server', `127.0.0.1:${p.port}`, '--auth', 'PLAIN', '--auth-user', user, '--auth-password', 'pw', '--ehlo', `${user}.test`, '--from', `${user}@example.org`, '--to', `${user}@example.net`]);
      assert.equal(r.code, 0, r.transcript);
    }
    if (pools === 'postfix') await until(() => told.messages.length + routed.messages.length >= 2, 'both relayed', 30_000);
    await new Promise((res) => setTimeout(res, pools === 'postfix' ? 500 : 0));
    assert.deepEqual(told.messages.map((m) => m.rcpts), [['carol@example.net']]);
    assert.deepEqual(routed.messages.map((m) => m.rcpts), [['dave@example.net']]);
  });
});
