// One lifecycle from accept to record (issue 22), over real sockets:
//  - the decision seam: a decision at the greeting and one at MAIL, each settling with a
//    verdict, a timeout or a failure, and cancelled when the client leaves; every path
//    ends in the one session record and releases admission;
//  - refusals at accept are sessions too: over the per-IP cap, over the per-IP rate,
//    draining, a failed implicit-TLS handshake, a bad PROXY header, each counted in
//    postern_sessions_total and in `postern report` with the same numbers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Decision, DecisionPoints, Verdict } from '../../src/session/decision.js';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const CLI = join(import.meta.dirname, '../../dist/cli.js');

const yaml = (backend: number, extra = '') => `hostname: life.test
listeners:
  - { name: smtp, listen: 127.0.0.1:0 }
backends:
  identity: xclient
  connect_timeout: 2s
  reply_timeout: 5s
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [ { address: 127.0.0.1:${backend} } ]
limits:
  per_ip: { connections: 1, rate: 1000/1m }
${extra}`;

const decision = (name: string, decide: Decision['decide'], over: Partial<Decision> = {}): Decision => ({
  name,
  deadlineMs: 300,
  onTimeout: { kind: 'pass' },
  onError: { kind: 'reply', reply: '554 5.3.2 life.test Service unavailable (decision failed)\r\n' },
  decide,
  ...over,
});

const DROP: Verdict = { kind: 'drop', reply: '521 5.7.1 life.test Go away\r\n', reason: 'error' };

describe('the decision seam', () => {
  let sink: Sink;
  let p: TestPostern;
  /** What each test wants decided, by client address (the seam passes the session's facts). */
  const greeting = new Map<string, () => Decision | null>();
  const mail = new Map<string, () => Decision | null>();
  const aborted: string[] = [];
  const points: DecisionPoints = {
    greeting: (f) => greeting.get(f.client.address)?.() ?? null,
    mail: (f) => mail.get(f.client.address)?.() ?? null,
  };

  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(yaml(sink.address().port), { decisions: points });
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  const sessionOf = (address: string, since: number): Promise<LogRecord> =>
    p.waitFor((r) => r.event === 'session' && (r.client as { address: string }).address === address && p.records.indexOf(r) >= since, 5000);

  /** per_ip.connections is 1: a second connection is admitted only if the first released its slot. */
  async function admittedAgain(address: string): Promise<void> {
    const c = await SmtpClient.connect(p.port, { localAddress: address });
    const [g] = await c.waitReplies(1);
    assert.equal(g!.code, 220, 'the per-IP slot was released');
    await c.cmd('QUIT');
  }

  it('greeting: drop answers 521 before any greeting and closes; no backend is spent', async () => {
    const addr = '127.0.0.21';
    greeting.set(addr, () => decision('screen', async () => DROP));
    const since = p.records.length;
    const before = sink.messages.length;
    const c = await SmtpClient.connect(p.port, { localAddress: addr });
    const [r] = await c.waitReplies(1);
    assert.equal(r!.code, 521);
    await c.waitClose();
    const rec = await sessionOf(addr, since);
    assert.equal(rec.close, 'error');
    assert.equal(rec.backend, null);
    assert.equal(sink.messages.length, before);
    greeting.delete(addr);
    await admittedAgain(addr);
  });

  it('greeting: a decision that never settles is bounded by its deadline, then its timeout verdict (pass) applies', async () => {
    const addr = '127.0.0.22';
    let signal: AbortSignal | null = null;
    greeting.set(addr, () =>
      decision('screen', (_f, s) => {
        signal = s;
        return new Promise<Verdict>(() => undefined);
      }),
    );
    const t0 = Date.now();
    const c = await SmtpClient.connect(p.port, { localAddress: addr });
    const r = await sendMessage(c, { helo: 'slow-decision.test' });
    assert.equal(r.code, 250);
    assert.ok(Date.now() - t0 >= 250, 'the greeting waited for the decision');
    assert.equal(signal!.aborted, true, 'the step was told to stop');
    greeting.delete(addr);
  });

  it('greeting: a decision that fails gets its error verdict: a 554 greeting, then 503 to all but QUIT', async () => {
    const addr = '127.0.0.23';
    greeting.set(addr, () => decision('screen', () => Promise.reject(new Error('resolver exploded'))));
    const since = p.records.length;
    const c = await SmtpClient.connect(p.port, { localAddress: addr });
    const [g] = await c.waitReplies(1);
    assert.equal(g!.code, 554);
    assert.equal((await c.cmd('EHLO x.test')).code, 503);
    assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 503);
    assert.equal((await c.cmd('QUIT')).code, 221);
    const rec = await sessionOf(addr, since);
    assert.equal(rec.close, 'quit');
    assert.ok(p.records.some((x) => x.decision === 'screen' && /resolver exploded/.test(String(x.err))), 'the failure is logged');
    greeting.delete(addr);
  });

  it('MAIL: reply-and-continue refuses that sender, and the session goes on to deliver another', async () => {
    const addr = '127.0.0.24';
    mail.set(addr, () =>
      decision('route', async (f) => (f.from === 'spam@example.org' ? { kind: 'reply', reply: '550 5.7.1 Sender refused by policy\r\n' } : { kind: 'pass' })),
    );
    const c = await SmtpClient.connect(p.port, { localAddress: addr });
    await c.waitReplies(1);
    await c.cmd('EHLO mail-decision.test');
    const m = await c.cmd('MAIL FROM:<spam@example.org>');
    assert.equal(m.code, 550);
    assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 503, 'no transaction was opened');
    const before = sink.messages.length;
    await c.cmd('MAIL FROM:<good@example.org>');
    assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const [d] = await c.send('Subject: ok\r\n\r\nhi\r\n.\r\n');
    assert.equal(d!.code, 250);
    await c.cmd('QUIT');
    assert.equal(sink.messages.length, before + 1);
    assert.equal(sink.messages.at(-1)!.from, 'good@example.org');
    mail.delete(addr);
  });

  it('MAIL: a decision that outlives its deadline with a reject fallback answers 421 and ends the session', async () => {
    const addr = '127.0.0.25';
    mail.set(addr, () =>
      decision('route', () => new Promise<Verdict>(() => undefined), {
        deadlineMs: 200,
        onTimeout: { kind: 'reject', reply: '421 4.3.0 life.test Try again later\r\n', reason: 'error' },
      }),
    );
    const since = p.records.length;
    const c = await SmtpClient.connect(p.port, { localAddress: addr });
    await c.waitReplies(1);
    await c.cmd('EHLO mail-timeout.test');
    const m = await c.cmd('MAIL FROM:<a@example.org>', 3000);
    assert.equal(m.code, 421);
    await c.waitClose();
    const rec = await sessionOf(addr, since);
    assert.equal(rec.close, 'error');
    assert.equal(rec.backend, null);
    mail.delete(addr);
    await admittedAgain(addr);
  });

  it('a client that leaves while a decision runs: the step is cancelled, the record written, the slot released', async () => {
    const addr = '127.0.0.26';
    greeting.set(addr, () =>
      decision(
        'screen',
        (_f, s) =>
          new Promise<Verdict>((_resolve, reject) => {
            s.addEventListener('abort', () => {
              aborted.push(addr);
              reject(new Error('aborted'));
            });
          }),
        { deadlineMs: 60_000 },
      ),
    );
    const since = p.records.length;
    const c = await SmtpClient.connect(p.port, { localAddress: addr });
    await new Promise((r) => setTimeout(r, 50));
    c.destroy();
    const rec = await sessionOf(addr, since);
    assert.equal(rec.close, 'client_closed');
    assert.deepEqual(aborted, [addr]);
    greeting.delete(addr);
    await admittedAgain(addr);
  });
});

describe('refusals at accept are sessions: postern_sessions_total and postern report agree', () => {
  let sink: Sink;
  let pki: TestPki;
  let leaf: Leaf;
  let p: TestPostern;
  let dir: string;

  before(async () => {
    sink = await startSink({ xclient: true });
    pki = await makePki();
    leaf = await pki.leaf('life', 'ecdsa', ['life.test']);
    dir = mkdtempSync(join(tmpdir(), 'postern-life-'));
    p = await startPostern(`hostname: life.test
listeners:
  - { name: smtp, listen: 127.0.0.1:0 }
  - { name: smtps, listen: 127.0.0.1:0, tls: implicit }
  - { name: lb, listen: 127.0.0.1:0, proxy_protocol: on, trusted_proxies: [127.0.0.1/32], proxy_protocol_timeout: 300ms }
tls:
  certificates:
    - { cert: ${leaf.cert}, key: ${leaf.key} }
backends:
  identity: xclient
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
limits:
  per_ip: { connections: 1, rate: 3/1m }
`);
  });
  after(async () => {
    await p.stop();
    await sink.close();
    await pki.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function sessionsTotal(): Promise<number> {
    const m = await p.postern.metrics.sessions.get();
    return m.values.reduce((n, v) => n + v.value, 0);
  }

  it('cap, rate, TLS failure, bad PROXY header and drain each give one record, counted the same by metrics and report', async () => {
    const a = p.postern.addresses();
    // Over the per-IP connection cap: the second connection of 127.0.0.31.
    const first = await SmtpClient.connect(a.smtp!.port, { localAddress: '127.0.0.31' });
    await first.waitReplies(1);
    const over = await SmtpClient.connect(a.smtp!.port, { localAddress: '127.0.0.31' });
    const [r421] = await over.waitReplies(1);
    assert.equal(r421!.code, 421);
    assert.match(r421!.lines[0]!, /^4\.7\.0 /);
    await over.waitClose();
    await first.cmd('QUIT');
    first.end();
    // Over the per-IP rate (3 a minute): the 4th connection of 127.0.0.32.
    for (let i = 0; i < 3; i++) {
      const c = await SmtpClient.connect(a.smtp!.port, { localAddress: '127.0.0.32' });
      const port = c.socket.localPort;
      await c.waitReplies(1);
      await c.cmd('QUIT');
      c.end();
      await c.waitClose();
      // Its slot is free once its record is written.
      await p.waitFor((r) => r.event === 'session' && (r.client as { port: number }).port === port);
    }
    const fast = await SmtpClient.connect(a.smtp!.port, { localAddress: '127.0.0.32' });
    assert.equal((await fast.waitReplies(1))[0]!.code, 421);
    // A failed implicit-TLS handshake: plaintext to port 465.
    const bad = await SmtpClient.connect(a.smtps!.port, { localAddress: '127.0.0.33' });
    bad.socket.write('EHLO not-tls.test\r\n\r\n');
    await bad.waitClose();
    // A trusted balancer whose header is garbage: greeted, then 503 to all but QUIT.
    const lb = await SmtpClient.connect(a.lb!.port);
    lb.socket.write('PROXY NONSENSE\r\n');
    const [g] = await lb.waitReplies(1, 3000);
    assert.equal(g!.code, 220);
    assert.equal((await lb.cmd('EHLO lb.test')).code, 503);
    await lb.cmd('QUIT');
    lb.end();
    await p.waitFor((r) => r.event === 'session' && r.listener === 'lb');
    // A balancer that connects and closes before its header (a TCP health check).
    const probe = net.connect({ port: a.lb!.port, host: '127.0.0.1' });
    await new Promise((r) => probe.on('connect', r));
    probe.destroy();
    await new Promise((r) => setTimeout(r, 400));
    // Draining: a new connection gets 421 4.3.2.
    const stopping = p.postern.stop(3000);
    await new Promise((r) => setTimeout(r, 50));
    const late = await SmtpClient.connect(a.smtp!.port, { localAddress: '127.0.0.35' }).catch(() => null);
    if (late) {
      const [d] = await late.waitReplies(1);
      assert.equal(d!.code, 421);
      assert.match(d!.lines[0]!, /^4\.3\.2 /);
    }
    await stopping;

    const sessions = p.records.filter((r) => r.event === 'session');
    const byClose = (close: string) => sessions.filter((s) => s.close === close);
    assert.equal(byClose('limit').length, 2, 'cap and rate');
    assert.ok(byClose('limit').every((s) => s.limit === 'per_ip_connections' || s.limit === 'per_ip_rate'), JSON.stringify(byClose('limit')));
    const tlsFailed = sessions.filter((s) => (s.anomalies as string[]).includes('tls_handshake_failed'));
    assert.equal(tlsFailed.length, 1, 'the failed handshake');
    assert.ok(sessions.some((s) => (s.anomalies as string[]).includes('proxy_header_invalid')));
    assert.ok(sessions.some((s) => s.close === 'client_closed' && (s.client as { address: string }).address === '127.0.0.1' && s.helo === null));
    if (late) assert.equal(byClose('shutdown').filter((s) => (s.client as { address: string }).address === '127.0.0.35').length, 1);

    // The same numbers three ways: the records, the metric, and `postern report`.
    assert.equal(await sessionsTotal(), sessions.length);
    const log = join(dir, 'postern.log');
    writeFileSync(log, p.records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const rep = spawnSync(process.execPath, [CLI, 'report', '--json', log], { encoding: 'utf8' });
    assert.equal(rep.status, 0, rep.stderr);
    const report = JSON.parse(rep.stdout) as { totals: { sessions: number } };
    assert.equal(report.totals.sessions, sessions.length);
  });
});
