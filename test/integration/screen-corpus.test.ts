// Screening must not punish ordinary clients (issue 23, "false-positive corpus"): with every
// test's action at drop and the cache off (each session screened in full), swaks (plain and
// --pipeline), Python's smtplib, nodemailer and Postfix's smtp-source all pass every time,
// deliver, and fail no test.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { startSink, type Sink } from '../../src/sink/index.js';
import { startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

/** Runs per client: enough that a timing-dependent false positive shows, within the file's time budget. */
const RUNS = 5;

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as NodeJS.ErrnoException).code ?? 1) || 1 : 0, out: stdout + stderr }),
    );
  });
}

describe('screening and the well-behaved client corpus: every session passes', { timeout: 120_000 }, () => {
  let sink: Sink;
  let p: TestPostern;

  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(`hostname: screen.test
listeners:
  - { name: mx, listen: 127.0.0.1:0, screen: on }
backends:
  identity: xclient
  connect_timeout: 2s
  reply_timeout: 5s
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
screen:
  greet_wait: 300ms
  pregreet_action: drop
  pipelining_action: drop
  non_smtp_action: drop
  bare_lf_action: drop
  command_limit_action: drop
  cache: { pass_ttl: 0s }
`);
  });
  after(async () => {
    await p?.stop();
    await sink?.close();
  });

  /** Every session with this HELO passed screening with no failed test and sent its message. */
  async function allPassed(name: string, helo: string, sessions: number): Promise<void> {
    const deadline = Date.now() + 15_000;
    const mine = () => p.records.filter((r) => r.event === 'session' && r.helo === helo);
    while (mine().length < sessions && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const recs: LogRecord[] = mine();
    assert.equal(recs.length, sessions, `${name}: ${recs.length} sessions`);
    for (const r of recs) {
      const s = r.screen as { result: string; tests: string[] };
      assert.equal(s.result, 'pass', `${name}: ${JSON.stringify(r)}`);
      assert.deepEqual(s.tests, [], `${name}: ${JSON.stringify(r)}`);
      assert.ok((r.transactions as number) >= 1, `${name}: delivered`);
    }
  }

  it('swaks, plain and --pipeline', { skip: !swaksAvailable() && 'swaks not installed' }, async () => {
    for (const [helo, extra] of [['swaks-plain.test', []], ['swaks-pipe.test', ['--pipeline']]] as [string, string[]][]) {
      for (let i = 0; i < RUNS; i++) {
        const r = await swaks(['--server', `127.0.0.1:${p.port}`, '--ehlo', helo, '--from', 'a@example.org', '--to', 'b@example.net', ...extra]);
        assert.equal(r.code, 0, r.transcript);
      }
      await allPassed(`swaks ${extra.join(' ')}`, helo, RUNS);
    }
  });

  it("Python's smtplib", async () => {
    const py = `
import smtplib
for i in range(${RUNS}):
    s = smtplib.SMTP('127.0.0.1', ${p.port}, local_hostname='python.test', timeout=10)
    s.sendmail('py@example.org', ['b@example.net', 'c@example.net'], 'Subject: py\\r\\n\\r\\nhello from smtplib\\r\\n')
    s.quit()
`;
    const r = await run('python3', ['-c', py]);
    assert.equal(r.code, 0, r.out);
    await allPassed('smtplib', 'python.test', RUNS);
  });

  it('nodemailer', async () => {
    for (let i = 0; i < RUNS; i++) {
      const t = nodemailer.createTransport({ host: '127.0.0.1', port: p.port, secure: false, ignoreTLS: true, name: 'nodemailer.test' });
      await t.sendMail({ from: 'nm@example.org', to: 'b@example.net', subject: 'nm', text: 'hello from nodemailer' });
      t.close();
    }
    await allPassed('nodemailer', 'nodemailer.test', RUNS);
  });

  it("Postfix's smtp-source (pipelining after EHLO's reply)", { skip: !existsSync('/usr/sbin/smtp-source') && 'smtp-source not installed' }, async () => {
    const r = await run('/usr/sbin/smtp-source', ['-s', '2', '-m', String(RUNS), '-l', '2048', '-M', 'source.test', `127.0.0.1:${p.port}`]);
    assert.equal(r.code, 0, r.out);
    await allPassed('smtp-source', 'source.test', RUNS);
  });
});
