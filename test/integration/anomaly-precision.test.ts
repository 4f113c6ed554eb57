// The false-positive corpus (issue 23, item 8): ordinary clients that read the 221 and close
// as they always do must earn no anomaly at all, not even a notice, under the default
// cluster (`workers: 2`), plain, STARTTLS and implicit TLS. Before QUIT_FIN_WAIT_MS
// (farewell.ts) Postern's close_notify raced the client's own close, and a client closing
// with it unread made its kernel reset: `rst_after_quit` on 41 to 49 of 50 sessions of
// smtplib over TLS and 46 to 50 of swaks over TLS. Each client runs RUNS sessions, several
// at once, on a loaded 2-core machine: the race this guards against is a timing one, so
// counts matter, not one run.
// The real resets after QUIT that must still be named are in quit-linger.test.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { eximSkipReason, startExim, type EximInstance } from '../helpers/exim.js';
import { freePort } from '../helpers/net.js';
import { cliMissing, spawnPostern, type PosternProcess } from '../helpers/postern-group.js';
import type { LogRecord } from '../helpers/postern.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

/**
 * Sessions per client, as the issue asks. All clients at once took 67 s (load average 9)
 * to 110 s (load average 17, other suites running) on the 2-core machine.
 */
const RUNS = 50;
const DOMAIN = 'precision.test';
const SMTP_SOURCE = '/usr/sbin/smtp-source';

function run(cmd: string, args: string[], timeoutMs = 180_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as NodeJS.ErrnoException).code ?? 1) || 1 : 0, out: stdout + stderr }),
    );
  });
}

/** Runs job(0..n-1), `width` at a time. */
async function pool(n: number, width: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await job(next++);
    }),
  );
}

// One Python process runs every session of a mode in turn, as a sending script would.
const PYTHON = `
import smtplib, ssl, sys
mode, port, runs, prefix, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
for i in range(runs):
    name = '%s-%d.${DOMAIN}' % (prefix, i)
    if mode == 'ssl':
        s = smtplib.SMTP_SSL('127.0.0.1', port, local_hostname=name, timeout=15, context=ctx)
    else:
        s = smtplib.SMTP('127.0.0.1', port, local_hostname=name, timeout=15)
    if mode == 'starttls':
        s.starttls(context=ctx)
    s.sendmail('py@example.org', ['b@example.net'], 'Subject: %s\\r\\n\\r\\nhello\\r\\n' % name)
    s.quit()
`;

const eximSkip = await eximSkipReason();

describe('anomaly precision: the ordinary client corpus earns no anomaly', { skip: cliMissing(), timeout: 300_000 }, () => {
  let pki: TestPki;
  let leaf: Leaf;
  let sink: Sink;
  let dir: string;
  let p: PosternProcess;
  const ports: Record<'plain' | 'starttls' | 'implicit', number> = { plain: 0, starttls: 0, implicit: 0 };

  before(async () => {
    [pki, sink, dir] = await Promise.all([makePki(), startSink({ xclient: true }), mkdtemp(join(tmpdir(), 'postern-precision-'))]);
    leaf = await pki.leaf('mx', 'ecdsa', ['mx.postern.test']);
    ports.plain = await freePort();
    ports.starttls = await freePort();
    ports.implicit = await freePort();
    const file = join(dir, 'postern.yaml');
    await writeFile(
      file,
      `hostname: mx.postern.test
workers: 2
shutdown_grace: 1s
listeners:
  - { name: plain, listen: 127.0.0.1:${ports.plain} }
  - { name: starttls, listen: 127.0.0.1:${ports.starttls}, tls: starttls }
  - { name: implicit, listen: 127.0.0.1:${ports.implicit}, tls: implicit }
backends:
  identity: xclient
  # Lenient: the sink shares this busy test process, and a backend marked down would fail
  # sessions for reasons that are not this file's subject.
  health_check: { interval: 2s, timeout: 10s, rise: 1, fall: 5 }
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
limits: { per_ip: { connections: 1000, rate: 1000000/1m } }
metrics: { listen: 127.0.0.1:${await freePort()} }
tls:
  certificates: [ { cert: ${leaf.cert}, key: ${leaf.key} } ]
log: { level: info }
`,
    );
    p = await spawnPostern(file, { workers: 2, timeoutMs: 30_000 });
  });
  after(async () => {
    await p?.stop();
    await sink?.close();
    await pki?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const sessions = (prefix: string): LogRecord[] =>
    p.records().filter((r) => r.event === 'session' && typeof r.helo === 'string' && (r.helo === `${prefix}.${DOMAIN}` || r.helo.startsWith(`${prefix}-`)));

  /**
   * Waits for `want` session records of the client, then asserts none carries an anomaly
   * (but those in `own`: what the client does on purpose, whatever Postern's timing).
   */
  async function verdict(t: { diagnostic(s: string): void }, prefix: string, want: number, t0: number, own: string[] = []): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (sessions(prefix).length < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const recs = sessions(prefix);
    const flagged = recs.filter((r) => (r.anomalies as string[]).length > 0);
    const kinds = [...new Set(flagged.flatMap((r) => r.anomalies as string[]))];
    t.diagnostic(`${prefix}: ${recs.length} sessions, ${flagged.length} with anomalies ${kinds.join(',') || '-'}, ${Date.now() - t0} ms`);
    const unexpected = recs.filter((r) => (r.anomalies as string[]).some((k) => !own.includes(k)));
    assert.ok(recs.length >= want, `${prefix}: ${recs.length} of ${want} session records`);
    assert.deepEqual(
      unexpected.map((r) => ({ helo: r.helo, anomalies: r.anomalies })),
      [],
      `${prefix}: ${flagged.length} of ${recs.length} sessions flagged`,
    );
    // nodemailer hangs up after its message without QUIT, which is no anomaly (core.ts).
    for (const r of recs) assert.ok(r.close === 'quit' || r.close === 'client_closed', JSON.stringify(r));
  }

  // Every client starts at once (in `before`), so the file takes the time of the slowest
  // rather than the sum, and sessions of different clients overlap as on a real MX; each
  // `it` waits for its client's runs, then judges their records.
  const jobs = new Map<string, Promise<string | null>>();
  let t0 = 0;
  /** Starts `job` now; its `it` awaits it. A job's result is a diagnostic line or null. */
  const start = (name: string, job: () => Promise<string | null>) => {
    const promise = job();
    promise.catch(() => undefined);
    jobs.set(name, promise);
  };
  const finished = async (name: string): Promise<string | null> => {
    const job = jobs.get(name);
    assert.ok(job, `${name} was started`);
    return job;
  };

  const swaksModes: [string, 'plain' | 'starttls' | 'implicit', string[]][] = [
    ['swaks-plain', 'plain', []],
    ['swaks-pipe', 'plain', ['--pipeline']],
    ['swaks-tls', 'starttls', ['-tls']],
    ['swaks-tlsc', 'implicit', ['--tls-on-connect']],
  ];
  const pythonModes = [
    ['plain', 'plain'],
    ['starttls', 'starttls'],
    ['ssl', 'implicit'],
  ] as const;
  const nodemailerModes = [
    ['starttls', 'starttls'],
    ['implicit', 'implicit'],
  ] as const;
  const skipSwaks = !swaksAvailable() && 'swaks not installed';
  const skipSource = !existsSync(SMTP_SOURCE) && 'smtp-source not installed';
  const skipPostfix = (!postfixAvailable() && 'postfix not installed or not root') || skipSource;
  const skipExim = eximSkip ?? skipSource;

  let pf: PostfixInstance | null = null;
  let ex: EximInstance | null = null;

  before(async () => {
    // The relaying MTAs start first, before the load: their harnesses bound their start-up.
    [pf, ex] = await Promise.all([
      skipPostfix
        ? null
        : startPostfix({
            extraMain: {
              myhostname: `postfix.${DOMAIN}`,
              relayhost: `[127.0.0.1]:${ports.starttls}`,
              default_transport: 'smtp',
              relay_transport: 'smtp',
              smtp_tls_security_level: 'may',
              smtp_helo_name: `postfix.${DOMAIN}`,
              // One session per message: each delivery is a connection of its own.
              smtp_connection_cache_on_demand: 'no',
            },
          }),
      skipExim ? null : startExim({ relayTo: { host: '127.0.0.1', port: ports.plain }, hostsProxy: '192.0.2.1' }),
    ]);
    t0 = Date.now();
    if (!skipSwaks) {
      for (const [prefix, listener, extra] of swaksModes) {
        start(prefix, async () => {
          await pool(RUNS, 2, async (i) => {
            const helo = `${prefix}-${i}.${DOMAIN}`;
            const r = await swaks(['--server', `127.0.0.1:${ports[listener]}`, '--ehlo', helo, '--from', 'a@example.org', '--to', 'b@example.net', ...extra], { timeoutMs: 120_000 });
            assert.equal(r.code, 0, r.transcript);
          });
          return null;
        });
      }
    }
    for (const [mode, listener] of pythonModes) {
      start(`smtplib-${mode}`, async () => {
        // Two scripts at once, each its share of the sessions.
        const shares = [Math.ceil(RUNS / 2), Math.floor(RUNS / 2)];
        const results = await Promise.all(shares.map((n, k) => run('python3', ['-c', PYTHON, mode, String(ports[listener]), String(n), `smtplib-${mode}-${k}`, leaf.ca.cert])));
        for (const r of results) assert.equal(r.code, 0, r.out);
        return null;
      });
    }
    for (const [mode, listener] of nodemailerModes) {
      start(`nodemailer-${mode}`, async () => {
        await pool(RUNS, 2, async (i) => {
          const tr = nodemailer.createTransport({
            host: '127.0.0.1',
            port: ports[listener],
            secure: mode === 'implicit',
            requireTLS: mode === 'starttls',
            name: `nodemailer-${mode}-${i}.${DOMAIN}`,
            tls: { ca: leaf.ca.pem, servername: 'mx.postern.test' },
          });
          await tr.sendMail({ from: 'nm@example.org', to: 'b@example.net', subject: 'nm', text: 'hello' });
          tr.close();
        });
        return null;
      });
    }
    if (!skipSource) {
      start('smtp-source', async () => {
        const r = await run(SMTP_SOURCE, ['-s', '2', '-m', String(RUNS), '-l', '1024', '-M', `smtp-source.${DOMAIN}`, `127.0.0.1:${ports.plain}`]);
        assert.equal(r.code, 0, r.out);
        return null;
      });
    }
    if (pf) {
      const mta = pf;
      start('postfix', async () => {
        const r = await run(SMTP_SOURCE, ['-s', '2', '-m', String(RUNS), '-l', '1024', '-M', 'injector.test', `127.0.0.1:${mta.port}`]);
        assert.equal(r.code, 0, r.out);
        const deadline = Date.now() + 120_000;
        const sent = () => (mta.readLog().match(/relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent/g) ?? []).length;
        while (sent() < RUNS && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
        assert.equal(sent(), RUNS, mta.readLog().slice(-3000));
        return null;
      });
    }
    if (ex) {
      const mta = ex;
      start('exim', async () => {
        const r = await run(SMTP_SOURCE, ['-s', '2', '-m', String(RUNS), '-l', '1024', '-M', 'injector.test', `127.0.0.1:${mta.port}`]);
        assert.equal(r.code, 0, r.out);
        const deadline = Date.now() + 120_000;
        const delivered = () => (mta.readLog().match(/ => \S+ .*C="250 /g) ?? []).length;
        while (delivered() < RUNS && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
        assert.equal(delivered(), RUNS, mta.readLog().slice(-3000));
        return null;
      });
    }
  });
  after(async () => {
    await Promise.all([pf?.stop(), ex?.stop()]);
  });

  for (const [prefix] of swaksModes) {
    it(`${prefix}: ${RUNS} sessions`, { skip: skipSwaks }, async (t) => {
      await finished(prefix);
      await verdict(t, prefix, RUNS, t0);
    });
  }
  for (const [mode] of pythonModes) {
    it(`smtplib ${mode}: ${RUNS} sessions`, async (t) => {
      await finished(`smtplib-${mode}`);
      await verdict(t, `smtplib-${mode}`, RUNS, t0);
    });
  }
  for (const [mode] of nodemailerModes) {
    it(`nodemailer ${mode}: ${RUNS} sessions`, async (t) => {
      await finished(`nodemailer-${mode}`);
      await verdict(t, `nodemailer-${mode}`, RUNS, t0);
    });
  }

  // smtp-source sets SO_LINGER to 0 on its socket (strace: setsockopt(SO_LINGER, {l_onoff=1,
  // l_linger=0})), so its close() after reading the 221 is a reset, every time, by its own
  // choice: on the wire the same as a client resetting after QUIT (anomalies.test.ts, "a
  // reset after reading the 221"), so `rst_after_quit`, a notice, and nothing else.
  it(`smtp-source: ${RUNS} sessions (its own reset after QUIT is named, nothing else)`, { skip: skipSource }, async (t) => {
    await finished('smtp-source');
    await verdict(t, 'smtp-source', RUNS, t0, ['rst_after_quit']);
  });

  it(`Postfix's smtp client (STARTTLS): ${RUNS} sessions`, { skip: skipPostfix }, async (t) => {
    await finished('postfix');
    await verdict(t, 'postfix', RUNS, t0);
    assert.ok(sessions('postfix').every((s) => s.tls), 'Postfix used STARTTLS');
  });

  it(`Exim's smtp transport: ${RUNS} messages`, { skip: skipExim }, async (t) => {
    await finished('exim');
    // Exim may carry several messages in one session; every session it opened counts. Its
    // last sessions end (a linger at most) after the deliveries it logged: wait until the
    // session records account for every message.
    const exim = () => p.records().filter((x) => x.event === 'session' && x.helo === 'exim-test.localhost');
    const carried = () => exim().reduce((n, x) => n + (x.transactions as number), 0);
    const deadline = Date.now() + 10_000;
    while (carried() < RUNS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(carried(), RUNS);
    const recs = exim();
    const flagged = recs.filter((x) => (x.anomalies as string[]).length > 0);
    t.diagnostic(`exim: ${recs.length} sessions for ${RUNS} messages, ${flagged.length} with anomalies, ${Date.now() - t0} ms`);
    assert.ok(recs.length >= 1);
    assert.deepEqual(flagged.map((x) => x.anomalies), []);
  });

  it('no other session record of the whole corpus carries an anomaly', () => {
    const recs = p.records().filter((r) => r.event === 'session' && r.helo !== `smtp-source.${DOMAIN}`);
    const flagged = recs.filter((r) => (r.anomalies as string[]).length > 0);
    assert.deepEqual(flagged.map((r) => `${String(r.helo)}: ${(r.anomalies as string[]).join(',')}`), []);
    const conns = new Set(recs.map((r) => r.conn));
    assert.deepEqual(p.records().filter((r) => r.event === 'anomaly' && conns.has(r.conn)), []);
  });
});
