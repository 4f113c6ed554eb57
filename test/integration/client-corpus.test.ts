// The project's well-behaved client corpus through one Postern (issue 14): swaks (plain,
// pipelining, STARTTLS, implicit TLS), Python's smtplib, nodemailer, Postfix's smtp-source,
// Postfix's own smtp delivery agent relaying through Postern, and Exim's smtp transport.
// None of them may earn a warning; `postern report` on the log, as an operator runs it,
// must show no suspicious session (notices such as rst_after_quit are what clients do).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { severityOf, type AnomalyKind } from '../../src/config/anomalies.js';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { eximSkipReason, startExim, type EximInstance } from '../helpers/exim.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { basicYaml, startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as NodeJS.ErrnoException).code ?? 1) || 1 : 0, out: stdout + stderr }),
    );
  });
}

const warnings = (r: LogRecord) => (r.anomalies as AnomalyKind[]).filter((k) => severityOf(k) === 'warning');
const eximSkip = await eximSkipReason();

describe('the well-behaved client corpus: no warnings, no suspicious session in the report', { timeout: 120_000 }, () => {
  let pki: TestPki;
  let sink: Sink;
  let p: TestPostern;
  const port = (name: string) => p.postern.addresses()[name]!.port;
  /** The HELO names each client used, to find its sessions. */
  const clients: Record<string, string> = {};

  before(async () => {
    pki = await makePki();
    const leaf = await pki.leaf('mx', 'ecdsa', ['mx.postern.test']);
    sink = await startSink({ xclient: true });
    const yaml = basicYaml([`127.0.0.1:${sink.address().port}`], `tls:\n  certificates:\n    - { cert: ${leaf.cert}, key: ${leaf.key} }\n`).replace(
      '  - name: smtp\n    listen: 127.0.0.1:0\n',
      '  - name: smtp\n    listen: 127.0.0.1:0\n    tls: starttls\n  - name: smtps\n    listen: 127.0.0.1:0\n    tls: implicit\n',
    );
    p = await startPostern(yaml);
  });
  after(async () => {
    await p?.stop();
    await sink?.close();
    await pki?.cleanup();
  });

  const check = async (name: string, helo: string) => {
    clients[name] = helo;
    await p.waitFor((r) => r.event === 'session' && r.helo === helo, 15_000);
    // Let every session of this client end (some clients open several).
    await new Promise((r) => setTimeout(r, 300));
    const recs = p.records.filter((r) => r.event === 'session' && r.helo === helo);
    assert.ok(recs.length >= 1);
    for (const r of recs) assert.deepEqual(warnings(r), [], `${name}: ${JSON.stringify(r)}`);
    notices[name] = [...new Set(recs.flatMap((r) => r.anomalies as string[]))];
  };
  /** Per client, the notices its sessions carried (for the diagnostic). */
  const notices: Record<string, string[]> = {};

  it('swaks: plain, --pipeline, STARTTLS, implicit TLS', { skip: !swaksAvailable() && 'swaks not installed' }, async () => {
    const runs: [string, string[]][] = [
      ['swaks-plain.test', []],
      ['swaks-pipe.test', ['--pipeline']],
      ['swaks-tls.test', ['-tls']],
    ];
    for (const [helo, extra] of runs) {
      const r = await swaks(['--server', `127.0.0.1:${port('smtp')}`, '--ehlo', helo, '--from', 'a@example.org', '--to', 'b@example.net', ...extra]);
      assert.equal(r.code, 0, r.transcript);
      await check(`swaks ${extra.join(' ')}`, helo);
    }
    const r = await swaks(['--server', `127.0.0.1:${port('smtps')}`, '--tls-on-connect', '--ehlo', 'swaks-465.test', '--from', 'a@example.org', '--to', 'b@example.net']);
    assert.equal(r.code, 0, r.transcript);
    await check('swaks --tls-on-connect', 'swaks-465.test');
  });

  it("Python's smtplib", async () => {
    const py = `
import smtplib
s = smtplib.SMTP('127.0.0.1', ${port('smtp')}, local_hostname='python.test', timeout=10)
s.sendmail('py@example.org', ['b@example.net', 'c@example.net'], 'Subject: py\\r\\n\\r\\nhello from smtplib\\r\\n')
s.quit()
`;
    const r = await run('python3', ['-c', py]);
    assert.equal(r.code, 0, r.out);
    await check('smtplib', 'python.test');
  });

  it('nodemailer', async () => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: port('smtp'), secure: false, ignoreTLS: true, name: 'nodemailer.test' });
    await t.sendMail({ from: 'nm@example.org', to: 'b@example.net', subject: 'nm', text: 'hello from nodemailer' });
    await check('nodemailer', 'nodemailer.test');
  });

  it("Postfix's smtp-source", { skip: !existsSync('/usr/sbin/smtp-source') && 'smtp-source not installed' }, async () => {
    const r = await run('/usr/sbin/smtp-source', ['-s', '2', '-m', '6', '-l', '2048', '-M', 'source.test', `127.0.0.1:${port('smtp')}`]);
    assert.equal(r.code, 0, r.out);
    await check('smtp-source', 'source.test');
  });

  it("Postfix's smtp delivery agent relaying through Postern", { skip: !postfixAvailable() && 'postfix not installed or not root' }, async () => {
    // A Postfix whose relayhost is Postern: its smtp client speaks to Postern as it speaks to
    // any MX (EHLO, pipelining, QUIT, connection reuse).
    let pf: PostfixInstance | null = null;
    try {
      pf = await startPostfix({
        extraMain: {
          myhostname: 'postfix-client.test',
          relayhost: `[127.0.0.1]:${port('smtp')}`,
          default_transport: 'smtp',
          relay_transport: 'smtp',
          smtp_tls_security_level: 'none',
          smtp_helo_name: 'postfix-client.test',
        },
      });
      for (let i = 0; i < 3; i++) {
        const r = await swaks(['--server', `127.0.0.1:${pf.port}`, '--ehlo', 'injector.test', '--from', `pf${i}@example.org`, '--to', 'b@example.net']);
        assert.equal(r.code, 0, r.transcript);
      }
      await pf.waitForLog(/relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent/, 20_000);
      await check("Postfix's smtp", 'postfix-client.test');
    } finally {
      await pf?.stop();
    }
  });

  it("Exim's smtp transport relaying through Postern", { skip: eximSkip ?? false }, async () => {
    let ex: EximInstance | null = null;
    try {
      ex = await startExim({ relayTo: { host: '127.0.0.1', port: port('smtp') }, hostsProxy: '192.0.2.1' });
      const r = await swaks(['--server', `127.0.0.1:${ex.port}`, '--local-interface', '127.0.0.9', '--ehlo', 'injector.test', '--from', 'ex@example.org', '--to', 'b@example.net']);
      assert.equal(r.code, 0, r.transcript);
      await ex.waitForLog(/=> b@example\.net .*C="250 /, 20_000);
      // Its smtp transport says HELO with primary_hostname.
      await check("Exim's smtp", 'exim-test.localhost');
    } finally {
      await ex?.stop();
    }
  });

  it('postern report on the whole log: no suspicious session', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-corpus-'));
    try {
      const log = join(dir, 'postern.log');
      await writeFile(log, p.records.map((r) => JSON.stringify(r)).join('\n') + '\n');
      const r = await run(process.execPath, [join(process.cwd(), 'dist', 'cli.js'), 'report', log, '--json']);
      assert.equal(r.code, 0, r.out);
      const report = JSON.parse(r.out) as { totals: { sessions: number; sessions_suspicious: number; suspicious_share: number; sessions_notice_only: number } };
      t.diagnostic(
        `corpus: ${report.totals.sessions} sessions from ${Object.keys(clients).length} clients; suspicious ${report.totals.sessions_suspicious} (${(report.totals.suspicious_share * 100).toFixed(1)} %), notice only ${report.totals.sessions_notice_only}`,
      );
      t.diagnostic(`notices per client: ${Object.entries(notices).map(([k, v]) => `${k}: ${v.join(',') || 'none'}`).join('; ')}`);
      assert.ok(report.totals.sessions >= 10);
      assert.equal(report.totals.sessions_suspicious, 0);
      assert.equal(report.totals.suspicious_share, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
