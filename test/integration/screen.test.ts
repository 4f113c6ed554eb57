// Screening in the session (issue 23), over real sockets with the built-in sink behind:
// the access list, the pregreet test with each action, DNSBL enforce (550 at RCPT, no
// backend) and drop (521, no backend), DNSWL allowlisting, the deep tests after the
// greeting (pipelining, non-SMTP, bare LF, command count), auto-ban, and the pass cache: a
// client that passed continues on the same connection, and is greeted at once next time,
// also by the other worker of a 2-worker cluster.
//
// The DNSBL client is its own slice (src/screen/dnsbl.ts): these tests give screening a
// fixed table behind the DnsblLookup interface, so they test the session's use of the
// answers, not DNS.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DnsblFactory, DnsblResult } from '../../src/screen/types.js';
import { startSink, type Sink } from '../../src/sink/index.js';
import { cliMissing, spawnPostern, type PosternProcess } from '../helpers/postern-group.js';
import { startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { freePort } from '../helpers/net.js';
import { clientLines, postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { rbldnsdAvailable, startRbldnsd, type Rbldnsd } from '../helpers/rbldnsd.js';
import { redisAvailable, startRedis, type RedisServer } from '../helpers/redis.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

/** Listed clients by address: what a DNSBL/DNSWL lookup answers for them. */
const LISTED: Record<string, DnsblResult> = {
  '127.0.0.40': { score: 3, hits: [{ zone: 'zen.test', weight: 3, answer: '127.0.0.2' }], errors: [], cached: false, ms: 1, skipped: [] },
  '127.0.0.41': { score: -5, hits: [{ zone: 'wl.test', weight: -5, answer: '127.0.9.2' }], errors: [], cached: false, ms: 1, skipped: [] },
};
const CLEAN: DnsblResult = { score: 0, hits: [], errors: [], cached: false, ms: 1, skipped: [] };

/** The fixed table behind the DnsblLookup interface; each lookup is counted. */
const lookups: string[] = [];
const table: DnsblFactory = () => ({
  async lookup(address) {
    lookups.push(address);
    return LISTED[address] ?? CLEAN;
  },
  close() {},
});

const GREET_WAIT = 600;

const yaml = (backend: number, screen: string) => `hostname: screen.test
listeners:
  - { name: mx, listen: 127.0.0.1:0, screen: on, xclient_from: [127.0.0.45] }
backends:
  identity: xclient
  connect_timeout: 2s
  reply_timeout: 5s
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [ { address: 127.0.0.1:${backend} } ]
screen:
  greet_wait: ${GREET_WAIT}ms
  dnsbl: { sites: ["zen.test=127.0.0.[2..11]*3", "wl.test=127.0.[0..255].[1..3]*-5"], threshold: 1, allowlist_threshold: -1, action: enforce, reply_map: { zen.test: our-list } }
${screen}
`;

/** The session record of the client at `address` written after record index `since`. */
const sessionOf = (p: TestPostern, address: string, since: number): Promise<LogRecord> =>
  p.waitFor((r) => r.event === 'session' && (r.client as { address: string }).address === address && p.records.indexOf(r) >= since, 8000);

type Screen = { result: string; score: number | null; dnsbl: { zone: string }[]; tests: string[]; ms: number };
const screenOf = (r: LogRecord) => r.screen as Screen;

/** Connects and waits for the first complete reply (the 220 or a refusal); returns ms to it and whether a `220-` teaser came first. */
async function greeted(port: number, localAddress: string): Promise<{ c: SmtpClient; ms: number; teaser: boolean; code: number }> {
  const t0 = Date.now();
  const c = await SmtpClient.connect(port, { localAddress });
  const [g] = await c.waitReplies(1, 8000);
  return { c, ms: Date.now() - t0, teaser: c.received.toString('latin1').startsWith('220-'), code: g!.code };
}

/** A raw socket that talks before the greeting; resolves with all it read once the server closed or `ms` passed. */
function pregreeter(port: number, localAddress: string, ms = 4000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => s.write('EHLO early.test\r\n'));
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, ms);
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

describe('screening in the session', () => {
  let sink: Sink;
  let p: TestPostern;

  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(
      yaml(
        sink.address().port,
        `  access: [ { cidr: 127.0.0.31, action: permit }, { cidr: 127.0.0.32/32, action: reject } ]
  pregreet_action: drop
  pipelining_action: drop
  non_smtp_action: drop
  bare_lf_action: enforce
  command_count_limit: 5
  command_limit_action: drop
  autoban: { failures: 2/1m, ban: 1m }`,
      ),
      { dnsbl: table },
    );
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  const delivered = (address: string) => sink.messages.filter((m) => m.client.address === address).length;

  it('access permit: greeted at once, no test, no lookup; the message goes through', async () => {
    const addr = '127.0.0.31';
    const since = p.records.length;
    const { c, ms, teaser } = await greeted(p.port, addr);
    assert.equal(teaser, false);
    assert.ok(ms < GREET_WAIT / 2, `greeted in ${ms} ms`);
    const r = await sendMessage(c, { helo: 'permit.test' });
    assert.equal(r.code, 250);
    const rec = await sessionOf(p, addr, since);
    assert.equal(screenOf(rec).result, 'permit');
    assert.equal(lookups.includes(addr), false);
    assert.equal(delivered(addr), 1);
  });

  it('an xclient_from upstream is not screened (it is not the client): greeted at once, its XCLIENT names the client', async () => {
    const addr = '127.0.0.45';
    const since = p.records.length;
    const { c, ms, teaser } = await greeted(p.port, addr);
    assert.equal(teaser, false);
    assert.ok(ms < GREET_WAIT / 2, `greeted in ${ms} ms`);
    await c.cmd('EHLO relay.test');
    assert.equal((await c.cmd('XCLIENT ADDR=192.0.2.45 NAME=[UNAVAILABLE]')).code, 220);
    const r = await sendMessage(c, { helo: 'told.test' });
    assert.equal(r.code, 250);
    const rec = await sessionOf(p, '192.0.2.45', since);
    assert.equal(rec.screen ?? null, null, 'no screening record for an upstream');
    assert.equal(lookups.includes(addr), false);
    assert.equal(sink.messages.filter((m) => m.client.address === '192.0.2.45').length, 1);
  });

  it('access reject: 521 5.7.1 at once, closed, no backend', async () => {
    const addr = '127.0.0.32';
    const since = p.records.length;
    const { c, code } = await greeted(p.port, addr);
    assert.equal(code, 521);
    assert.match(c.replies[0]!.lines.join(' '), /5\.7\.1/);
    await c.waitClose();
    const rec = await sessionOf(p, addr, since);
    assert.equal(screenOf(rec).result, 'reject');
    assert.equal(rec.close, 'screened');
    assert.equal(rec.backend, null);
  });

  it('a clean client waits out the teaser, passes and goes on to its backend on the same connection; next time it is greeted within 50 ms', async () => {
    const addr = '127.0.0.33';
    let since = p.records.length;
    const first = await greeted(p.port, addr);
    assert.equal(first.teaser, true, 'a 220- teaser first');
    assert.ok(first.ms >= GREET_WAIT - 50, `the final 220 after the greet wait (${first.ms} ms)`);
    const r = await sendMessage(first.c, { helo: 'clean.test' });
    assert.equal(r.code, 250);
    let rec = await sessionOf(p, addr, since);
    assert.equal(screenOf(rec).result, 'pass');
    assert.deepEqual(screenOf(rec).tests, []);
    assert.notEqual(rec.backend, null, 'the backend was opened in the same session');
    assert.equal(delivered(addr), 1);
    since = p.records.length;
    const again = await greeted(p.port, addr);
    assert.equal(again.teaser, false);
    // The client's clock includes connecting on a loaded machine: a generous bound there,
    // the 50 ms on Postern's own measure (accept to verdict).
    assert.ok(again.ms < GREET_WAIT / 2, `cached client greeted in ${again.ms} ms`);
    assert.equal((await sendMessage(again.c, { helo: 'clean.test' })).code, 250);
    rec = await sessionOf(p, addr, since);
    assert.equal(screenOf(rec).result, 'cached');
    assert.ok(screenOf(rec).ms < 50, `verdict in ${screenOf(rec).ms} ms`);
  });

  it('pregreet with drop: 521 and closed, no backend', async () => {
    const addr = '127.0.0.34';
    const since = p.records.length;
    const r = await pregreeter(p.port, addr);
    assert.equal(r.closed, true);
    assert.match(r.text, /^220-/);
    assert.match(r.text, /\r\n521 5\.7\.1 /);
    const rec = await sessionOf(p, addr, since);
    assert.equal(screenOf(rec).result, 'drop');
    assert.deepEqual(screenOf(rec).tests, ['pregreet']);
    assert.equal(rec.backend, null);
    assert.ok((rec.anomalies as string[]).includes('pregreet'));
  });

  it('DNSBL enforce: the session goes on, each RCPT gets 550 5.7.1 (reply_map name), DATA 554; no backend, nothing delivered', async () => {
    const addr = '127.0.0.40';
    const since = p.records.length;
    const { c, code } = await greeted(p.port, addr);
    assert.equal(code, 220);
    await c.cmd('EHLO listed.test');
    assert.equal((await c.cmd('MAIL FROM:<bot@listed.test>')).code, 250);
    for (const to of ['a@example.net', 'b@example.net']) {
      const rr = await c.cmd(`RCPT TO:<${to}>`);
      assert.equal(rr.code, 550);
      assert.match(rr.lines.join(' '), /5\.7\.1 .*blocked using our-list/);
    }
    assert.equal((await c.cmd('DATA')).code, 554);
    await c.cmd('QUIT');
    const rec = await sessionOf(p, addr, since);
    assert.equal(screenOf(rec).result, 'enforce');
    assert.equal(screenOf(rec).score, 3);
    assert.deepEqual(screenOf(rec).dnsbl, [{ zone: 'zen.test', weight: 3, answer: '127.0.0.2' }]);
    assert.equal(rec.backend, null);
    assert.equal(delivered(addr), 0);
    const logged = p.records.filter((r) => r.msg === 'screen enforce: RCPT refused' && r.client === addr);
    assert.equal(logged.length, 2);
    assert.equal(logged[0]!.helo, 'listed.test');
    assert.equal(logged[0]!.from, 'bot@listed.test');
  });

  it('DNSWL: a score at or below allowlist_threshold ends the greet wait early and skips the deep tests', async () => {
    const addr = '127.0.0.41';
    const since = p.records.length;
    const { c, ms } = await greeted(p.port, addr);
    assert.ok(ms < GREET_WAIT - 100, `greeted in ${ms} ms`);
    // Pipelined after EHLO: a violation, but the allowlisted client skips the test.
    const [ehlo, mail] = await c.send('EHLO wl.test\r\nMAIL FROM:<a@wl.test>\r\n', 2);
    assert.equal(ehlo!.code, 250);
    assert.equal(mail!.code, 250);
    assert.equal((await c.cmd('RCPT TO:<x@example.net>')).code, 250);
    await c.cmd('QUIT');
    const rec = await sessionOf(p, addr, since);
    assert.equal(screenOf(rec).result, 'pass');
    assert.equal(screenOf(rec).score, -5);
    assert.ok((rec.anomalies as string[]).includes('pipelining_violation'));
  });

  it('deep tests: pipelining (drop), non-SMTP (drop), bare LF (enforce), command count (drop), each after the greeting', async () => {
    const cases: { addr: string; send: string; result: string; test: string }[] = [
      { addr: '127.0.0.50', send: 'EHLO pipe.test\r\nMAIL FROM:<a@pipe.test>\r\n', result: 'drop', test: 'pipelining' },
      { addr: '127.0.0.51', send: 'GET / HTTP/1.1\r\n', result: 'drop', test: 'non_smtp' },
    ];
    for (const k of cases) {
      const since = p.records.length;
      const { c, code } = await greeted(p.port, k.addr);
      assert.equal(code, 220);
      c.socket.write(k.send);
      await c.waitClose(5000);
      assert.match(c.received.toString('latin1'), /\r\n521 5\.7\.1 /, k.test);
      const rec = await sessionOf(p, k.addr, since);
      assert.equal(screenOf(rec).result, k.result, k.test);
      assert.ok(screenOf(rec).tests.includes(k.test), k.test);
      assert.equal(rec.backend, null, k.test);
    }
    // The command count: one command at a time (pipelined they would fail the pipelining test first).
    {
      const addr = '127.0.0.52';
      const since = p.records.length;
      const { c } = await greeted(p.port, addr);
      const codes: number[] = [];
      for (let i = 0; i < 6 && !c.closed; i++) codes.push((await c.cmd('NOOP')).code);
      assert.deepEqual(codes, [250, 250, 250, 250, 250, 521]);
      await c.waitClose();
      const rec = await sessionOf(p, addr, since);
      assert.deepEqual(screenOf(rec).tests, ['command_limit']);
    }
    // Bare LF: enforce, the session goes on but refuses every RCPT.
    const addr = '127.0.0.53';
    const since = p.records.length;
    const { c } = await greeted(p.port, addr);
    const [ehlo] = await c.send('EHLO lf.test\n');
    assert.equal(ehlo!.code, 250);
    assert.equal((await c.cmd('MAIL FROM:<a@lf.test>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 550);
    await c.cmd('QUIT');
    const rec = await sessionOf(p, addr, since);
    assert.equal(screenOf(rec).result, 'enforce');
    assert.deepEqual(screenOf(rec).tests, ['bare_lf']);
    assert.equal(rec.backend, null);
  });

  it('auto-ban: after 2 dropped sessions in the window the address is dropped at connect, with no teaser', async () => {
    const addr = '127.0.0.60';
    for (let i = 0; i < 2; i++) {
      const since = p.records.length;
      await pregreeter(p.port, addr);
      await sessionOf(p, addr, since);
    }
    // The failure is counted when the session ends: give the count its round trip.
    await p.waitFor((r) => r.msg === 'screening: client banned' && r.client === addr, 5000);
    const since = p.records.length;
    const { c, code, teaser } = await greeted(p.port, addr);
    assert.equal(code, 521);
    assert.equal(teaser, false);
    await c.waitClose();
    const rec = await sessionOf(p, addr, since);
    assert.deepEqual(screenOf(rec).tests, ['autoban']);
  });

  it('anomaly and transaction records carry the client address', async () => {
    const a = p.records.find((r) => r.event === 'anomaly' && r.conn !== undefined && r.kind === 'pregreet');
    assert.equal((a?.client as { address: string } | undefined)?.address, '127.0.0.34');
    const t = p.records.find((r) => r.event === 'transaction');
    assert.match((t?.client as { address: string } | undefined)?.address ?? '', /^127\.0\.0\.\d+$/);
  });

  it('postern_screen_total counts the verdicts', async () => {
    const text = await p.postern.metrics.registry.metrics();
    assert.match(text, /postern_screen_total\{result="permit"\} [1-9]/);
    assert.match(text, /postern_screen_total\{result="enforce"\} [1-9]/);
    assert.match(text, /postern_screen_total\{result="drop"\} [1-9]/);
  });
});

describe('pregreet with enforce and with ignore', () => {
  let sink: Sink;
  after(async () => {
    await sink?.close();
  });
  before(async () => {
    sink = await startSink({ xclient: true });
  });

  /** A client that talks first, then goes through a whole transaction: its RCPT's reply code. */
  async function earlyTalker(p: TestPostern, addr: string): Promise<{ rcpt: number; rec: LogRecord }> {
    const since = p.records.length;
    const c = await SmtpClient.connect(p.port, { localAddress: addr });
    c.socket.write('EHLO early.test\r\n');
    const [, ehlo] = await c.waitReplies(2, 5000);
    assert.equal(ehlo!.code, 250);
    assert.equal((await c.cmd('MAIL FROM:<a@early.test>')).code, 250);
    const rcpt = (await c.cmd('RCPT TO:<b@example.net>')).code;
    await c.cmd('QUIT');
    return { rcpt, rec: await sessionOf(p, addr, since) };
  }

  it('enforce: the early talker gets its greeting, its RCPT 550, and no backend', async () => {
    const p = await startPostern(yaml(sink.address().port, '  pregreet_action: enforce'), { dnsbl: table });
    try {
      const { rcpt, rec } = await earlyTalker(p, '127.0.0.70');
      assert.equal(rcpt, 550);
      assert.equal(screenOf(rec).result, 'enforce');
      assert.equal(rec.backend, null);
    } finally {
      await p.stop();
    }
  });

  it('ignore: logged, relayed, and not remembered as a pass (the next connection waits again)', async () => {
    const p = await startPostern(yaml(sink.address().port, '  pregreet_action: ignore'), { dnsbl: table });
    try {
      const addr = '127.0.0.71';
      const { rcpt, rec } = await earlyTalker(p, addr);
      assert.equal(rcpt, 250);
      assert.equal(screenOf(rec).result, 'pass');
      assert.deepEqual(screenOf(rec).tests, ['pregreet']);
      assert.notEqual(rec.backend, null);
      const again = await greeted(p.port, addr);
      assert.equal(again.teaser, true);
      again.c.destroy();
    } finally {
      await p.stop();
    }
  });
});

describe('the pass cache across the workers of a host', { skip: cliMissing() }, () => {
  let sink: Sink;
  let proc: PosternProcess | null = null;
  let dir: string;
  after(async () => {
    await proc?.stop();
    await sink?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a client that passed on one worker is greeted at once by both (20 connections: a 1-in-2 worker cannot pass by luck)', async () => {
    sink = await startSink({ xclient: true });
    dir = mkdtempSync(join(tmpdir(), 'postern-screen-'));
    const port = await freePort();
    const file = join(dir, 'postern.yaml');
    writeFileSync(
      file,
      `hostname: screen.test
workers: 2
listeners:
  - { name: mx, listen: 127.0.0.1:${port}, screen: on }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
screen: { greet_wait: ${GREET_WAIT}ms }
`,
    );
    const cluster = await spawnPostern(file, { workers: 2 });
    proc = cluster;
    const addr = '127.0.0.80';
    const first = await greeted(port, addr);
    assert.equal(first.teaser, true);
    assert.equal((await sendMessage(first.c, { helo: 'pass.test' })).code, 250);
    // The pass is remembered when the greeting's verdict is in; the next connection may race it.
    const deadline = Date.now() + 5000;
    while (!proc.records().some((r) => r.event === 'session' && (r.screen as Screen | undefined)?.result === 'pass') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const cached = () => cluster.records().filter((r) => r.event === 'session' && (r.screen as Screen | undefined)?.result === 'cached');
    // A connection id starts with its process's random prefix (observe/ids.ts).
    const pids = () => new Set(cached().map((r) => String(r.conn).slice(0, 6)));
    // The kernel hands each connection to one worker, not in turn: at least 20 connections, and
    // on until both workers have greeted one (at most 60).
    let n = 0;
    while (n < 20 || (n < 60 && pids().size < 2)) {
      const g = await greeted(port, addr);
      assert.equal(g.teaser, false, `connection ${n} was greeted without the teaser`);
      assert.ok(g.ms < 300, `connection ${n} greeted in ${g.ms} ms`);
      await g.c.cmd('QUIT');
      await g.c.waitClose();
      n++;
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(cached().length, n);
    assert.equal(pids().size, 2, `both workers greeted cached clients (${n} connections)`);
  });
});

describe('the pass cache across instances through state.redis', { skip: cliMissing() || (!redisAvailable() && 'redis-server not installed') }, () => {
  let sink: Sink;
  let redis: RedisServer;
  const procs: PosternProcess[] = [];
  let dir: string;
  after(async () => {
    for (const p of procs) await p.stop();
    await redis?.stop();
    await sink?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a client that passed on instance A is greeted at once by instance B; a client B never saw still waits', async () => {
    sink = await startSink({ xclient: true });
    redis = await startRedis();
    dir = mkdtempSync(join(tmpdir(), 'postern-screen-redis-'));
    const ports: number[] = [];
    for (const name of ['a', 'b']) {
      const port = await freePort();
      ports.push(port);
      const file = join(dir, `${name}.yaml`);
      writeFileSync(
        file,
        `hostname: ${name}.screen.test
workers: 1
listeners:
  - { name: mx, listen: 127.0.0.1:${port}, screen: on }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
screen: { greet_wait: ${GREET_WAIT}ms }
state: { redis: { url: "${redis.url}", prefix: "screen-test:" } }
`,
      );
      procs.push(await spawnPostern(file));
    }
    const [a, b] = ports as [number, number];
    const addr = '127.0.0.90';
    const first = await greeted(a, addr);
    assert.equal(first.teaser, true);
    assert.equal((await sendMessage(first.c, { helo: 'pass.test' })).code, 250);
    const deadline = Date.now() + 5000;
    while (!procs[0]!.records().some((r) => r.event === 'session' && (r.screen as Screen | undefined)?.result === 'pass') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const onB = await greeted(b, addr);
    assert.equal(onB.teaser, false, 'B knew the pass from Redis');
    assert.ok(onB.ms < 300, `greeted by B in ${onB.ms} ms`);
    await onB.c.cmd('QUIT');
    const stranger = await greeted(b, '127.0.0.91');
    assert.equal(stranger.teaser, true);
    stranger.c.destroy();
  });
});

describe('screening in front of Postfix', { skip: !postfixAvailable() && 'postfix not available (needs root)' }, () => {
  let pf: PostfixInstance;
  let p: TestPostern;
  before(async () => {
    pf = await startPostfix();
    p = await startPostern(yaml(pf.port, '  pregreet_action: drop'), { dnsbl: table });
  });
  after(async () => {
    await p?.stop();
    await pf?.stop();
  });

  /** Postfix's smtpd lines that name `address` (after XCLIENT, smtpd logs the client Postern told it). */
  const linesFor = (address: string) => pf.readLog().split('\n').filter((l) => /\/smtpd\[\d+\]:/.test(l) && l.includes(`[${address}]`));

  it('a dropped and an enforced client never reach Postfix; a passed one opens exactly one session, on its first connection', async () => {
    // Dropped: talks before the greeting.
    const dropped = '127.0.0.100';
    let since = p.records.length;
    await pregreeter(p.port, dropped);
    assert.equal(screenOf(await sessionOf(p, dropped, since)).result, 'drop');
    // Enforced: listed.
    const enforced = '127.0.0.40';
    since = p.records.length;
    const e = await greeted(p.port, enforced);
    await e.c.cmd('EHLO listed.test');
    await e.c.cmd('MAIL FROM:<bot@listed.test>');
    assert.equal((await e.c.cmd('RCPT TO:<postmaster@localhost>')).code, 550);
    await e.c.cmd('QUIT');
    assert.equal(screenOf(await sessionOf(p, enforced, since)).result, 'enforce');
    // Passed: one connection, one message.
    const passed = '127.0.0.101';
    since = p.records.length;
    const g = await greeted(p.port, passed);
    assert.equal((await sendMessage(g.c, { helo: 'good.test', to: ['postmaster@localhost'] })).code, 250);
    const rec = await sessionOf(p, passed, since);
    assert.equal(screenOf(rec).result, 'pass');
    await pf.waitForLog(new RegExp(`client=[^\\s]*\\[${passed.replace(/\./g, '\\.')}\\]`));
    assert.equal(clientLines(pf.readLog()).filter((l) => l.address === passed).length, 1, 'exactly one message from the passed client');
    assert.equal(linesFor(dropped).length, 0, `Postfix never heard of the dropped client: ${linesFor(dropped).join('\n')}`);
    assert.equal(linesFor(enforced).length, 0, `Postfix never heard of the enforced client: ${linesFor(enforced).join('\n')}`);
    // One backend session: Postern's record names one backend and no failover.
    assert.equal((rec.backend as { attempts?: unknown[] }).attempts, undefined);
  });
});

describe('screening with the DNSBL client against rbldnsd', { skip: !rbldnsdAvailable() && 'rbldnsd missing (apt-get install rbldnsd)' }, () => {
  let rbl: Rbldnsd;
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    rbl = await startRbldnsd([
      // 127.0.0.2 listed and 127.0.0.1 not: the zone check at start passes.
      { name: 'bl.test', type: 'ip4set', lines: [':127.0.0.2:listed', '127.0.0.2', '127.0.0.44'] },
      { name: 'wl.test', type: 'ip4set', lines: [':127.0.10.2:', '127.0.0.2', '127.0.0.45'] },
    ]);
    sink = await startSink({ xclient: true });
    // No `dnsbl` option: Postern's own DNSBL client, asking rbldnsd.
    p = await startPostern(`hostname: screen.test
listeners:
  - { name: mx, listen: 127.0.0.1:0, screen: on }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
screen:
  greet_wait: ${GREET_WAIT}ms
  dnsbl:
    sites: ["bl.test=127.0.0.[2..11]*3", "wl.test=127.0.[0..255].[1..3]*-5"]
    resolvers: ["${rbl.server}"]
    allowlist_threshold: -1
    action: drop
    timeout: 3s
`);
  });
  after(async () => {
    await p?.stop();
    await sink?.close();
    await rbl?.stop();
  });

  it('a listed client is dropped with the zone named; a DNSWL client greeted early; a clean one passes; queries are counted', async () => {
    let since = p.records.length;
    // As postscreen does: the teaser is out when the verdict comes, so the 521 follows it.
    const listed = await SmtpClient.connect(p.port, { localAddress: '127.0.0.44' });
    await listed.waitClose(8000);
    assert.match(listed.received.toString('latin1'), /^220-screen\.test [^\r]*\r\n521 5\.7\.1 screen\.test Service unavailable; client \[127\.0\.0\.44\] blocked using bl\.test\r\n$/);
    let rec = await sessionOf(p, '127.0.0.44', since);
    assert.equal(screenOf(rec).result, 'drop');
    assert.deepEqual(screenOf(rec).dnsbl, [{ zone: 'bl.test', weight: 3, answer: '127.0.0.2' }]);
    assert.equal(rec.backend, null);

    since = p.records.length;
    const wl = await greeted(p.port, '127.0.0.45');
    assert.equal(wl.code, 220);
    assert.ok(wl.ms < GREET_WAIT - 100, `DNSWL client greeted in ${wl.ms} ms`);
    assert.equal((await sendMessage(wl.c, { helo: 'wl.test' })).code, 250);
    rec = await sessionOf(p, '127.0.0.45', since);
    assert.equal(screenOf(rec).score, -5);

    since = p.records.length;
    const clean = await greeted(p.port, '127.0.0.46');
    assert.equal(clean.teaser, true);
    assert.equal((await sendMessage(clean.c, { helo: 'clean.test' })).code, 250);
    rec = await sessionOf(p, '127.0.0.46', since);
    assert.equal(screenOf(rec).result, 'pass');
    assert.equal(screenOf(rec).score, 0);

    const text = await p.postern.metrics.registry.metrics();
    assert.match(text, /postern_dnsbl_queries_total\{zone="bl\.test",result="listed"\} [1-9]/);
    assert.match(text, /postern_dnsbl_queries_total\{zone="wl\.test",result="clean"\} [1-9]/);
    assert.match(text, /postern_dnsbl_seconds_count [1-9]/);
  });
});

describe('screen.cache.dnsbl_ttl_from_dns', () => {
  it('true: answers cached for their TTL within min_ttl..max_ttl; false: every answer kept for max_ttl', async () => {
    const sink = await startSink({ xclient: true });
    try {
      for (const fromDns of [true, false]) {
        const seen: { minTtlMs: number; maxTtlMs: number }[] = [];
        const capture: DnsblFactory = (opts) => {
          seen.push({ minTtlMs: opts.minTtlMs, maxTtlMs: opts.maxTtlMs });
          return { lookup: async () => CLEAN, close() {} };
        };
        const p = await startPostern(
          yaml(sink.address().port, `  cache: { pass_ttl: 1d, dnsbl_ttl_from_dns: ${fromDns} }`).replace('reply_map: { zen.test: our-list } }', 'reply_map: { zen.test: our-list }, min_ttl: 2m, max_ttl: 30m }'),
          { dnsbl: capture },
        );
        await p.stop();
        assert.deepEqual(seen[0], fromDns ? { minTtlMs: 120_000, maxTtlMs: 1_800_000 } : { minTtlMs: 1_800_000, maxTtlMs: 1_800_000 });
      }
    } finally {
      await sink.close();
    }
  });
});
