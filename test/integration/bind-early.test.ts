// backends.bind_at (issue 26): with `ehlo` a session binds its backend at the client's EHLO,
// so the handshake overlaps the client's round trip to MAIL; what the backend is told stays
// true (a later EHLO's name reaches it), a client repeating EHLO opens one backend
// connection, not one per line, a session that leaves without mail QUITs it, and STARTTLS
// still on offer keeps the bind at MAIL. With `mail` (the default) nothing reaches the
// backend before MAIL.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { makePki, type TestPki } from '../helpers/certs.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { startScriptBackend, until, type ScriptBackend, type ScriptConn } from '../helpers/script-backend.js';
import { SmtpClient } from '../helpers/smtp-client.js';

/** MAIL and RCPT on a greeted session (relayed: the scripted backend answers them), then QUIT; the RCPT's code. */
async function transaction(c: SmtpClient): Promise<number> {
  assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
  const r = await c.cmd('RCPT TO:<b@example.net>');
  await c.cmd('QUIT');
  return r.code;
}

const started: { p: TestPostern; b: ScriptBackend }[] = [];

async function setup(bindAt?: 'ehlo' | 'mail', edit = (yaml: string) => yaml): Promise<{ p: TestPostern; b: ScriptBackend }> {
  const b = await startScriptBackend({ ehlo: ['PIPELINING', 'XCLIENT NAME ADDR PORT PROTO HELO LOGIN'] });
  const yaml = edit(basicYaml([b.address]).replace('identity: xclient', `identity: xclient${bindAt ? `\n  bind_at: ${bindAt}` : ''}`));
  const p = await startPostern(yaml);
  started.push({ p, b });
  return { p, b };
}

/** Session connections (health checks never send XCLIENT). */
const sessions = (b: ScriptBackend): ScriptConn[] => b.conns.filter((c) => c.commands.some((l) => l.startsWith('XCLIENT ')));

describe('backends.bind_at', () => {
  let pki: TestPki | null = null;
  after(async () => {
    for (const { p, b } of started) {
      await p.stop();
      await b.close();
    }
    await pki?.cleanup();
  });

  it('ehlo: the backend is told the client and its name before any MAIL; the transaction goes on that connection', async () => {
    const { b, p } = await setup('ehlo');
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.7' });
    await c.waitReplies(1);
    assert.equal((await c.cmd('EHLO early.test')).code, 250);
    await until(() => sessions(b).length === 1, 'a backend session after EHLO');
    const s = sessions(b)[0]!;
    assert.match(s.commands.find((l) => l.startsWith('XCLIENT '))!, /\bHELO=early\.test\b.*\bADDR=127\.0\.0\.7\b|\bADDR=127\.0\.0\.7\b.*\bHELO=early\.test\b/);
    assert.equal(s.commands.some((l) => l.startsWith('MAIL')), false, 'no MAIL yet');
    assert.equal(await transaction(c), 250);
    assert.equal(sessions(b).length, 1, 'the message used the connection bound at EHLO');
    assert.ok(s.commands.some((l) => l.startsWith('MAIL FROM:')));
    await until(() => s.quit, 'QUIT to the backend');
  });

  it('a client repeating EHLO (50 in one write) opens one backend connection, and the backend learns the last name', async () => {
    const { b, p } = await setup('ehlo');
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.8' });
    await c.waitReplies(1);
    const replies = await c.send(Array.from({ length: 50 }, (_, i) => `EHLO again-${i}.test\r\n`).join(''), 50);
    assert.deepEqual([...new Set(replies.map((r) => r.code))], [250]);
    assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 250);
    assert.equal(sessions(b).length, 1, 'one backend connection for the session');
    const ehlos = sessions(b)[0]!.commands.filter((l) => l.startsWith('EHLO '));
    assert.equal(ehlos.at(-1), 'EHLO again-49.test', `the backend's last EHLO: ${ehlos.join(', ')}`);
    await c.cmd('QUIT');
  });

  it('a session that leaves after EHLO QUITs its early backend; the record names it', async () => {
    const { b, p } = await setup('ehlo');
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.9' });
    await c.waitReplies(1);
    await c.cmd('EHLO leaves.test');
    await until(() => sessions(b).length === 1, 'a backend session after EHLO');
    assert.equal((await c.cmd('QUIT')).code, 221);
    await until(() => sessions(b)[0]!.quit, 'QUIT to the backend');
    const rec = await p.waitFor((r) => r.event === 'session' && r.helo === 'leaves.test');
    assert.equal(rec.close, 'quit');
    assert.equal((rec.backend as { address: string }).address, b.address);
    assert.equal(sessions(b)[0]!.commands.some((l) => l.startsWith('MAIL')), false);
  });

  it('mail (the default): nothing reaches the backend before the first MAIL', async () => {
    const { b, p } = await setup();
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.10' });
    await c.waitReplies(1);
    await c.cmd('EHLO late.test');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sessions(b).length, 0, 'no backend session before MAIL');
    assert.equal(await transaction(c), 250);
    assert.equal(sessions(b).length, 1);
  });

  it('ehlo, with STARTTLS on offer: no backend before MAIL (TLS would void what it was told)', async () => {
    pki = await makePki();
    const leaf = await pki.leaf('bind', 'ecdsa', ['postern.test']);
    const { b, p } = await setup('ehlo', (y) =>
      y.replace('    listen: 127.0.0.1:0', '    listen: 127.0.0.1:0\n    tls: starttls') + `tls:\n  certificates: [ { cert: ${leaf.cert}, key: ${leaf.key} } ]\n`,
    );
    assert.equal(p.config.listeners[0]!.tls, 'starttls');
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.11' });
    await c.waitReplies(1);
    const ehlo = await c.cmd('EHLO plain.test');
    assert.match(ehlo.lines.join('\n'), /STARTTLS/);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sessions(b).length, 0, 'no backend session while STARTTLS is on offer');
    assert.equal(await transaction(c), 250);
    assert.equal(sessions(b).length, 1);
  });
});
