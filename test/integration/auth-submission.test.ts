// Submission through Postern (issue 15), all real: swaks logs in (PLAIN and LOGIN, over
// STARTTLS and implicit TLS), Postern asks a real Dovecot auth service, and tells a real
// Postfix who logged in with XCLIENT LOGIN, so Postfix's permit_sasl_authenticated lets
// the authenticated user relay and refuses the anonymous one. Also: the failure limit,
// the plaintext refusal, `required`, the verifier down, and an nginx-style auth_http
// verifier that routes the session to the backend it names.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { severityOf, type AnomalyKind } from '../../src/config/anomalies.js';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { dovecotMissing, startDovecot, type DovecotInstance } from '../helpers/dovecot.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const missing = dovecotMissing() ?? (!postfixAvailable() ? 'postfix not installed or not root' : null) ?? (!swaksAvailable() ? 'swaks not installed' : null);

/** Postern with a STARTTLS submission listener (auth required), implicit TLS (required) and an MX listener (optional). */
function yaml(opts: { backend: string; leaf: Leaf; verifier: string; failures?: string; extra?: string }): string {
  return `hostname: submit.test
listeners:
  - { name: submission, listen: 127.0.0.1:0, tls: starttls, auth: required }
  - { name: submissions, listen: 127.0.0.1:0, tls: implicit, auth: required }
  - { name: mx, listen: 127.0.0.1:0, tls: starttls, auth: optional }
tls:
  certificates:
    - { cert: ${opts.leaf.cert}, key: ${opts.leaf.key} }
backends:
  identity: xclient
  connect_timeout: 2s
  reply_timeout: 5s
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers:
    - address: ${opts.backend}
auth:
  verifier: ${opts.verifier}
  failures: ${opts.failures ?? '{ per_ip: 3/10m, per_user: 50/10m }'}
${opts.extra ?? ''}`;
}

/** Every record, as JSON: where a password must never appear. */
const allLogs = (p: TestPostern) => p.records.map((r) => JSON.stringify(r)).join('\n');

/** The client port swaks used, from its transcript (`Trying ... : connected` does not say it; the session record does). */
async function lastSession(p: TestPostern, address: string, since: number): Promise<LogRecord> {
  return p.waitFor((r) => r.event === 'session' && (r.client as { address: string }).address === address && p.records.indexOf(r) >= since, 8000);
}

describe('SMTP AUTH at Postern against real Dovecot and Postfix', { skip: missing ?? false }, () => {
  let pki: TestPki;
  let leaf: Leaf;
  let dovecot: DovecotInstance;
  let postfix: PostfixInstance;
  let p: TestPostern;
  const ports: Record<string, number> = {};

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('submit', 'ecdsa', ['submit.test']);
    dovecot = await startDovecot({ users: [{ user: 'alice', password: 'alice-secret-1' }, { user: 'bob', password: 'bob-secret-2' }] });
    // Only an authenticated client may relay; after XCLIENT Postfix judges the told client.
    // permit_sasl_authenticated is evaluated only with SASL enabled in smtpd (smtpd_check.c
    // checks smtpd_sasl_is_active first), so Postfix gets the same Dovecot, as it would
    // in production; XCLIENT LOGIN then sets sasl_method=XCLIENT without a password.
    postfix = await startPostfix({
      extraMain: {
        smtpd_relay_restrictions: 'permit_sasl_authenticated, reject',
        mynetworks: '127.0.0.1/32',
        smtpd_sasl_auth_enable: 'yes',
        smtpd_sasl_type: 'dovecot',
        smtpd_sasl_path: dovecot.socketPath,
      },
    });
    p = await startPostern(yaml({ backend: `127.0.0.1:${postfix.port}`, leaf, verifier: `{ type: dovecot, address: ${dovecot.socketPath} }` }));
    for (const [name, a] of Object.entries(p.postern.addresses())) ports[name] = a.port;
  });
  after(async () => {
    await p?.stop();
    await postfix?.stop();
    await dovecot?.stop();
    await pki?.cleanup();
  });

  for (const [mech, listener, tlsArgs, user, pass] of [
    ['PLAIN', 'submission', ['-tls'], 'alice', 'alice-secret-1'],
    ['LOGIN', 'submissions', ['--tls-on-connect'], 'bob', 'bob-secret-2'],
  ] as const) {
    it(`swaks --auth ${mech} on ${listener}: relayed, and Postfix logs sasl_username=${user} for the real client`, async () => {
      const since = p.records.length;
      const r = await swaks([
        '--server', `127.0.0.1:${ports[listener]}`, '--local-interface', '127.0.0.2', ...tlsArgs,
        '--auth', mech, '--auth-user', user, '--auth-password', pass,
        '--ehlo', `${user}.client.test`, '--from', `${user}@example.org`, '--to', 'someone@example.net',
      ]);
      assert.equal(r.code, 0, r.transcript);
      assert.match(r.transcript, /<~?\s*235 2\.7\.0/);
      const rec = await lastSession(p, '127.0.0.2', since);
      assert.deepEqual(rec.auth, { user, mechanism: mech });
      assert.equal(rec.transactions, 1);
      const port = (rec.client as { port: number }).port;
      const line = await postfix.waitForLog(new RegExp(`client=unknown\\[127\\.0\\.0\\.2\\]:${port}, sasl_method=XCLIENT, sasl_username=${user}`));
      assert.ok(line);
      assert.doesNotMatch(allLogs(p), new RegExp(pass), 'a password appeared in a log record');
    });
  }

  it('an anonymous client may not relay (Postfix refuses), and required listeners answer MAIL with 530', async () => {
    // Optional listener, no AUTH: Postfix's permit_sasl_authenticated does not apply.
    const anon = await swaks(['--server', `127.0.0.1:${ports.mx}`, '--local-interface', '127.0.0.3', '-tls', '--from', 'anon@example.org', '--to', 'someone@example.net']);
    assert.notEqual(anon.code, 0);
    assert.match(anon.transcript, /554 5\.7\.1 <someone@example\.net>: Recipient address rejected/);
    // Required: 530 before AUTH (after STARTTLS, since AUTH is never offered before TLS).
    const req = await swaks(['--server', `127.0.0.1:${ports.submission}`, '--local-interface', '127.0.0.3', '-tls', '--from', 'anon@example.org', '--to', 'someone@example.net']);
    assert.notEqual(req.code, 0);
    assert.match(req.transcript, /530 5\.7\.0 Authentication required/);
  });

  it('AUTH is neither offered nor taken before STARTTLS (538)', async () => {
    const c = await SmtpClient.connect(ports.mx!, { localAddress: '127.0.0.4' });
    await c.waitReplies(1);
    const ehlo = await c.cmd('EHLO plain.test');
    assert.ok(!ehlo.lines.some((l) => /^AUTH\b/.test(l)), ehlo.lines.join('|'));
    assert.match((await c.cmd(`AUTH PLAIN ${Buffer.from('\0alice\0alice-secret-1').toString('base64')}`)).lines[0]!, /^5\.7\.11 /);
    assert.equal((await c.cmd('AUTH PLAIN')).code, 538);
    await c.cmd('QUIT');
  });

  it('wrong passwords: 535 and an auth_failed notice each; past auth.failures.per_ip, 454 without asking Dovecot, and auth_flood', async () => {
    const bad = (n: number) =>
      swaks(['--server', `127.0.0.1:${ports.submission}`, '--local-interface', '127.0.0.5', '-tls', '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', `wrong-${n}`, '--quit-after', 'AUTH']);
    const since = p.records.length;
    for (let i = 0; i < 3; i++) assert.match((await bad(i)).transcript, /535 5\.7\.8/);
    const asked = dovecot.readLog().split('\n').length;
    const flood = await bad(9);
    assert.match(flood.transcript, /454 4\.7\.0 Too many failed authentication attempts/);
    const failed = p.records.slice(since).filter((r) => r.event === 'anomaly' && r.kind === 'auth_failed');
    assert.equal(failed.length, 3);
    assert.ok(failed.every((r) => r.severity === 'notice'));
    const floodRec = await p.waitFor((r) => r.event === 'anomaly' && r.kind === 'auth_flood');
    assert.equal(floodRec.severity, 'warning');
    assert.doesNotMatch(allLogs(p), /wrong-\d/);
    // The flood was refused without a request to Dovecot (its log would show one more passdb lookup).
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(dovecot.readLog().split('\n').length - asked <= 1);
    // Metrics: ok, invalid, flood counted.
    const metrics = await p.postern.metrics.registry.getSingleMetricAsString('postern_auth_total');
    assert.match(metrics, /result="invalid"\} [3-9]/);
    assert.match(metrics, /result="flood"\} [1-9]/);
  });

  it('Dovecot down: 454 4.7.0 (try later), and logging in works again once it is back', async () => {
    await dovecot.kill();
    try {
      const r = await swaks(['--server', `127.0.0.1:${ports.submission}`, '--local-interface', '127.0.0.6', '-tls', '--auth', 'PLAIN', '--auth-user', 'bob', '--auth-password', 'bob-secret-2', '--quit-after', 'AUTH']);
      assert.match(r.transcript, /454 4\.7\.0/);
    } finally {
      await dovecot.restart();
    }
    const ok = await swaks(['--server', `127.0.0.1:${ports.submission}`, '--local-interface', '127.0.0.6', '-tls', '--auth', 'PLAIN', '--auth-user', 'bob', '--auth-password', 'bob-secret-2', '--quit-after', 'AUTH'], { timeoutMs: 30_000 });
    assert.match(ok.transcript, /235 2\.7\.0/, ok.transcript);
  });
});

describe('auth_http verifier (nginx protocol): headers, refusal, and routing by Auth-Server/Auth-Port', { skip: swaksAvailable() ? false : 'swaks not installed' }, () => {
  let pki: TestPki;
  let leaf: Leaf;
  let sinkA: Sink;
  let sinkB: Sink;
  let auth: http.Server;
  let p: TestPostern;
  const seen: http.IncomingHttpHeaders[] = [];

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('submit', 'ecdsa', ['submit.test']);
    sinkA = await startSink({ xclient: true });
    sinkB = await startSink({ xclient: true });
    auth = http.createServer((req, res) => {
      seen.push(req.headers);
      const ok = req.headers['auth-user'] === 'carol' && decodeURIComponent(String(req.headers['auth-pass'])) === 'p@ss word%';
      if (ok) res.writeHead(200, { 'Auth-Status': 'OK', 'Auth-Server': '127.0.0.1', 'Auth-Port': String(sinkB.address().port) });
      else res.writeHead(200, { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '0' });
      res.end();
    });
    await new Promise<void>((r) => auth.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(auth.address() as { port: number }).port}/auth`;
    p = await startPostern(yaml({ backend: `127.0.0.1:${sinkA.address().port}`, leaf, verifier: `{ type: http, url: '${url}', timeout: 2s }` }));
  });
  after(async () => {
    await p?.stop();
    await sinkA?.close();
    await sinkB?.close();
    await new Promise((r) => auth?.close(r));
    await pki?.cleanup();
  });

  it('sends nginx auth_http headers, and the session goes to the backend the auth service named', async () => {
    const port = p.postern.addresses().submission!.port;
    const r = await swaks([
      '--server', `127.0.0.1:${port}`, '--local-interface', '127.0.0.7', '-tls', '--auth', 'LOGIN', '--auth-user', 'carol',
      '--auth-password', 'p@ss word%', '--ehlo', 'carol.test', '--from', 'carol@example.org', '--to', 'x@example.net',
    ]);
    assert.equal(r.code, 0, r.transcript);
    const h = seen.at(-1)!;
    // nginx says `plain` for the LOGIN mechanism too (the password travels in clear either way).
    assert.equal(h['auth-method'], 'plain');
    assert.equal(h['auth-user'], 'carol');
    // URL-escaped as nginx's NGX_ESCAPE_MAIL_AUTH does: space and % escaped, @ kept.
    assert.equal(h['auth-pass'], 'p@ss%20word%25');
    assert.equal(h['auth-protocol'], 'smtp');
    assert.equal(h['auth-login-attempt'], '1');
    assert.equal(h['client-ip'], '127.0.0.7');
    assert.equal(h['auth-smtp-helo'], 'carol.test');
    // Routed: the message reached sink B, not the configured sink A, told the real client.
    const [m] = await sinkB.waitFor(1);
    assert.equal(m!.client.address, '127.0.0.7');
    assert.equal(sinkA.messages.length, 0);
    const rec = await p.waitFor((x) => x.event === 'session' && (x.client as { address: string }).address === '127.0.0.7');
    assert.deepEqual(rec.auth, { user: 'carol', mechanism: 'LOGIN' });
    assert.equal((rec.backend as { address: string }).address, `127.0.0.1:${sinkB.address().port}`);
  });

  it('an auth service refusal is a 535, with the session still open for another try', async () => {
    const port = p.postern.addresses().submission!.port;
    const r = await swaks(['--server', `127.0.0.1:${port}`, '--local-interface', '127.0.0.8', '-tls', '--auth', 'PLAIN', '--auth-user', 'carol', '--auth-password', 'nope', '--quit-after', 'AUTH']);
    assert.match(r.transcript, /535 5\.7\.8/);
    const rec = await p.waitFor((x) => x.event === 'session' && (x.client as { address: string }).address === '127.0.0.8');
    assert.equal(rec.close, 'quit');
    assert.equal(rec.auth, null);
    // auth_failed, a notice (and nothing of warning severity).
    assert.ok((rec.anomalies as string[]).includes('auth_failed'), JSON.stringify(rec.anomalies));
    assert.ok((rec.anomalies as AnomalyKind[]).every((k) => severityOf(k) === 'notice'), JSON.stringify(rec.anomalies));
  });
});
