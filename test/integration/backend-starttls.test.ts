// STARTTLS from Postern to real Postfix (smtpd_tls_security_level = may): verified against
// the test CA, before XCLIENT, and resumed on the next session.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makePki } from '../helpers/certs.js';
import { postfixAvailable, startPostfix } from '../helpers/postfix.js';
import { basicYaml, startPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const skip = !postfixAvailable() && 'postfix is not installed (apt-get install postfix), or not root';

describe('backend STARTTLS to real Postfix', { skip }, () => {
  it('required + verified: the client is told by XCLIENT inside TLS, and the second backend handshake resumes', async () => {
    const pki = await makePki();
    const leaf = await pki.leaf('backend', 'rsa', ['backend.postern.test']);
    const pf = await startPostfix({ tls: { cert: leaf.cert, key: leaf.key } });
    const p = await startPostern(
      basicYaml([`127.0.0.1:${pf.port}`]).replace(
        'identity: xclient',
        `identity: xclient\n  tls: { starttls: required, verify: true, servername: backend.postern.test, ca: ${leaf.ca.cert} }`,
      ),
    );
    try {
      const tlsOf = async (local: string, helo: string) => {
        const c = await SmtpClient.connect(p.port, { localAddress: local });
        const port = c.socket.localPort!;
        assert.equal((await sendMessage(c, { helo })).code, 250);
        await pf.waitForLog(new RegExp(`client=unknown\\[${local.replace(/\./g, '\\.')}\\]:${port}\\b`));
        const rec = await p.waitFor((x) => x.event === 'session' && x.helo === helo);
        return (rec.backend as { tls?: { version: string; resumed: boolean } }).tls;
      };
      const first = await tlsOf('127.0.0.2', 'first-tls.test');
      assert.ok(first, 'STARTTLS with the backend');
      assert.equal(first.resumed, false);
      const second = await tlsOf('127.0.0.3', 'second-tls.test');
      assert.equal(second!.resumed, true, 'Postern resumed its TLS session with Postfix');
      assert.match(pf.readLog(), /TLS connection established from unknown\[127\.0\.0\.1\]/);
    } finally {
      await p.stop();
      await pf.stop();
      await pki.cleanup();
    }
  });

  it('verification against the wrong name fails the handshake and never relays in clear', async () => {
    const pki = await makePki();
    const leaf = await pki.leaf('backend', 'rsa', ['backend.postern.test']);
    const pf = await startPostfix({ tls: { cert: leaf.cert, key: leaf.key } });
    const p = await startPostern(
      basicYaml([`127.0.0.1:${pf.port}`]).replace(
        'identity: xclient',
        `identity: xclient\n  tls: { starttls: required, verify: true, servername: wrong.example, ca: ${leaf.ca.cert} }`,
      ),
    );
    try {
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      await c.cmd('EHLO verify.test');
      const r = await c.cmd('MAIL FROM:<a@example.org>');
      assert.equal(r.code, 451);
      await c.cmd('QUIT');
      const w = await p.waitFor((x) => x.msg === 'backend handshake failed');
      assert.match(String(w.err), /STARTTLS with .* failed/);
    } finally {
      await p.stop();
      await pf.stop();
      await pki.cleanup();
    }
  });

  it('required, but the backend offers no STARTTLS: marked down with the reason', async () => {
    const pf = await startPostfix();
    const p = await startPostern(basicYaml([`127.0.0.1:${pf.port}`]).replace('identity: xclient', 'identity: xclient\n  tls: { starttls: required }'));
    try {
      const down = await p.waitFor((x) => x.event === 'backend' && x.state === 'down');
      assert.match(String(down.reason), /STARTTLS not offered/);
    } finally {
      await p.stop();
      await pf.stop();
    }
  });
});
