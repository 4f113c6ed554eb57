// Trust follows the client (issue 21, B1). HAProxy with send-proxy-v2 in front of Postern
// (listeners with proxy_protocol: on, trusted_proxies: [HAProxy]), Postern in xclient mode
// to real Postfix (with SASL through a real Dovecot, so Postfix logs sasl_username for an
// XCLIENT LOGIN). A client behind the trusted balancer must never be offered XCLIENT or be
// able to pick its address and login: not on the MX listener, and not on the `auth:
// required` submission listener, where LOGIN= would replace AUTH. An upstream that is
// itself in xclient_from (nginx's mail proxy or another Postern behind the balancer) keeps
// its XCLIENT, once: after it names a client, that client is judged.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeProxyV2 } from '../../src/proxy/index.js';
import { makePki, type TestPki } from '../helpers/certs.js';
import { dovecotMissing, startDovecot, type DovecotInstance } from '../helpers/dovecot.js';
import { haproxyAvailable, startHaproxy, type HaproxyInstance } from '../helpers/haproxy.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const skip =
  (!postfixAvailable() ? 'postfix is not installed (apt-get install postfix), or not root' : null) ??
  (!haproxyAvailable() ? 'haproxy is not installed (apt-get install haproxy)' : null) ??
  dovecotMissing() ??
  false;

/** The attacker: an ordinary internet client behind the balancer. */
const ATTACKER = '127.0.0.74';
/** An upstream proxy (nginx mail, another Postern) behind the balancer, listed in xclient_from. */
const UPSTREAM = '127.0.0.75';

describe('XCLIENT behind a trusted PROXY balancer (HAProxy send-proxy-v2, Postfix behind)', { skip }, () => {
  let pki: TestPki;
  let dovecot: DovecotInstance;
  let pf: PostfixInstance;
  let p: TestPostern;
  let mx: HaproxyInstance;
  let sub: HaproxyInstance;

  before(async () => {
    pki = await makePki();
    const leaf = await pki.leaf('trust', 'ecdsa', ['trust.test']);
    dovecot = await startDovecot({ users: [{ user: 'alice', password: 'alice-secret-1' }] });
    pf = await startPostfix({
      extraMain: {
        // Loopback clients relay as before; a told client from elsewhere only with a login.
        smtpd_relay_restrictions: 'permit_mynetworks, permit_sasl_authenticated, reject',
        smtpd_sasl_auth_enable: 'yes',
        smtpd_sasl_type: 'dovecot',
        smtpd_sasl_path: dovecot.socketPath,
      },
    });
    const grants = `proxy_protocol: on, trusted_proxies: [127.0.0.1/32], xclient_from: [${UPSTREAM}/32]`;
    p = await startPostern(`hostname: trust.test
listeners:
  - { name: mx, listen: 127.0.0.1:0, ${grants} }
  - { name: submission, listen: 127.0.0.1:0, tls: starttls, auth: required, ${grants} }
tls:
  certificates:
    - { cert: ${leaf.cert}, key: ${leaf.key} }
backends:
  identity: xclient
  connect_timeout: 2s
  reply_timeout: 5s
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers:
    - address: 127.0.0.1:${pf.port}
auth:
  verifier: { type: dovecot, address: ${dovecot.socketPath} }
`);
    const a = p.postern.addresses();
    mx = await startHaproxy({ target: { host: '127.0.0.1', port: a.mx!.port }, sendProxy: 'v2' });
    sub = await startHaproxy({ target: { host: '127.0.0.1', port: a.submission!.port }, sendProxy: 'v2' });
  });
  after(async () => {
    await mx?.stop();
    await sub?.stop();
    await p?.stop();
    await pf?.stop();
    await dovecot?.stop();
    await pki?.cleanup();
  });

  const sessionOf = (helo: string): Promise<LogRecord> => p.waitFor((r) => r.event === 'session' && r.helo === helo, 8000);

  it('MX: a client behind the balancer is not offered XCLIENT, and its XCLIENT is refused; Postfix sees the real client', async () => {
    const c = await SmtpClient.connect(mx.port, { localAddress: ATTACKER });
    const port = c.socket.localPort!;
    await c.waitReplies(1);
    const e = await c.cmd('EHLO attacker.test');
    assert.ok(!e.lines.some((l) => /^XCLIENT\b/.test(l)), e.lines.join('|'));
    const x = await c.cmd('XCLIENT ADDR=7.7.7.7 NAME=trusted.example LOGIN=postmaster');
    assert.equal(x.code, 550, x.lines.join('|'));
    assert.match(x.lines[0]!, /^5\.7\.0 /);
    // The session goes on as the client it is.
    await c.cmd('RSET');
    const r = await sendMessage(c, { helo: 'attacker-mx.test' });
    assert.equal(r.code, 250, r.lines.join('|'));
    const rec = await sessionOf('attacker-mx.test');
    assert.deepEqual(rec.client, { address: ATTACKER, port });
    assert.equal(rec.auth, null);
    assert.ok((rec.anomalies as string[]).includes('xclient_untrusted'));
    await pf.waitForLog(new RegExp(`client=unknown\\[127\\.0\\.0\\.74\\]:${port}\\b`));
    const log = pf.readLog();
    assert.doesNotMatch(log, /7\.7\.7\.7|trusted\.example|sasl_username=postmaster/);
  });

  it('submission (auth: required, plaintext): XCLIENT LOGIN= from a client behind the balancer does not replace AUTH', async () => {
    const c = await SmtpClient.connect(sub.port, { localAddress: ATTACKER });
    await c.waitReplies(1);
    const e = await c.cmd('EHLO attacker-sub.test');
    assert.ok(!e.lines.some((l) => /^XCLIENT\b/.test(l)), e.lines.join('|'));
    const x = await c.cmd('XCLIENT ADDR=7.7.7.8 LOGIN=alice');
    assert.equal(x.code, 550, x.lines.join('|'));
    await c.cmd('EHLO attacker-sub.test');
    const m = await c.cmd('MAIL FROM:<alice@example.org>');
    assert.equal(m.code, 530, 'still needs AUTH');
    await c.cmd('QUIT');
    const rec = await sessionOf('attacker-sub.test');
    assert.equal(rec.auth, null);
    assert.equal((rec.client as { address: string }).address, ATTACKER);
    assert.equal(rec.backend, null, 'no backend was bound');
    assert.doesNotMatch(pf.readLog(), /7\.7\.7\.8|sasl_username=alice/);
  });

  it('an upstream in xclient_from behind the balancer keeps XCLIENT: Postfix logs the client and login it told, once', async () => {
    const c = await SmtpClient.connect(mx.port, { localAddress: UPSTREAM });
    await c.waitReplies(1);
    const e = await c.cmd('EHLO upstream.test');
    assert.ok(e.lines.some((l) => /^XCLIENT ADDR PORT\b/.test(l)), e.lines.join('|'));
    const x = await c.cmd('XCLIENT ADDR=192.0.2.7 PORT=4242 NAME=[UNAVAILABLE] LOGIN=alice');
    assert.equal(x.code, 220, x.lines.join('|'));
    // Rights are now judged on the told client, which is not in xclient_from.
    const again = await c.cmd('XCLIENT ADDR=192.0.2.9');
    assert.equal(again.code, 550);
    const r = await sendMessage(c, { helo: 'told-mx.test' });
    assert.equal(r.code, 250, r.lines.join('|'));
    const rec = await sessionOf('told-mx.test');
    assert.deepEqual(rec.client, { address: '192.0.2.7', port: 4242 });
    assert.match(String(rec.proxy), /^127\.0\.0\.75:\d+$/, 'the upstream that told, not the balancer');
    assert.deepEqual(rec.auth, { user: 'alice', mechanism: 'XCLIENT' });
    await pf.waitForLog(/client=unknown\[192\.0\.2\.7\]:4242, sasl_method=XCLIENT, sasl_username=alice/);
    assert.doesNotMatch(pf.readLog(), /192\.0\.2\.9/);
  });

  it('submission: LOGIN= from an xclient_from upstream satisfies auth: required', async () => {
    const c = await SmtpClient.connect(sub.port, { localAddress: UPSTREAM });
    await c.waitReplies(1);
    await c.cmd('EHLO upstream-sub.test');
    const x = await c.cmd('XCLIENT ADDR=192.0.2.8 PORT=4343 LOGIN=alice');
    assert.equal(x.code, 220, x.lines.join('|'));
    const r = await sendMessage(c, { helo: 'told-sub.test', from: 'alice@example.org' });
    assert.equal(r.code, 250, r.lines.join('|'));
    const rec = await sessionOf('told-sub.test');
    assert.deepEqual(rec.auth, { user: 'alice', mechanism: 'XCLIENT' });
    await pf.waitForLog(/client=unknown\[192\.0\.2\.8\]:4343, sasl_method=XCLIENT, sasl_username=alice/);
  });

  it('the balancer itself gets no XCLIENT either: a peer in trusted_proxies without xclient_from is refused', async () => {
    // HAProxy's health-check style: a v2 LOCAL header keeps the socket's own address (127.0.0.1).
    const c = await SmtpClient.connect(p.postern.addresses().mx!.port);
    c.socket.write(encodeProxyV2({ command: 'local' }));
    await c.waitReplies(1);
    const e = await c.cmd('EHLO balancer.test');
    assert.ok(!e.lines.some((l) => /^XCLIENT\b/.test(l)), e.lines.join('|'));
    assert.equal((await c.cmd('XCLIENT ADDR=7.7.7.9')).code, 550);
    await c.cmd('QUIT');
  });
});
