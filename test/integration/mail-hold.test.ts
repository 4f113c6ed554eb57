// MAIL held back and sent with the next command (issue 17): a client that waits for each
// reply costs the backend one round trip fewer per message. What the client learns must
// stay true: a sender the backend refuses is refused at RCPT (as smtpd_delay_reject does),
// a 421 to the held MAIL reaches the client, a MAIL dropped by RSET or QUIT never reaches the
// backend, and a backend without PIPELINING gets MAIL on its own, as before.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { startScriptBackend, until, type ScriptBackend } from '../helpers/script-backend.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const started: { p: TestPostern; b: ScriptBackend }[] = [];

async function setup(opts: Parameters<typeof startScriptBackend>[0] = {}): Promise<{ p: TestPostern; b: ScriptBackend; c: SmtpClient }> {
  const b = await startScriptBackend(opts);
  const p = await startPostern(basicYaml([b.address]).replace('identity: xclient', 'identity: none'));
  started.push({ p, b });
  const c = await SmtpClient.connect(p.port);
  await c.waitReplies(1);
  await c.cmd('EHLO hold.test');
  return { p, b, c };
}

/** The commands the backend read on its session connection (after our own EHLO). */
const session = (b: ScriptBackend) => b.conns.at(-1)!.commands.filter((l) => !l.startsWith('EHLO'));

describe('MAIL held and sent with the first RCPT', () => {
  after(async () => {
    for (const { p, b } of started) {
      await p.stop();
      await b.close();
    }
  });

  it('the backend sees MAIL only with the RCPT, in one group; the message goes through', async () => {
    const { b, c } = await setup();
    const m = await c.cmd('MAIL FROM:<a@example.org>');
    assert.equal(m.code, 250);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(session(b), [], 'MAIL waits for the next command');
    assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 250);
    assert.deepEqual(session(b), ['MAIL FROM:<a@example.org>', 'RCPT TO:<b@example.net>']);
    assert.equal((await c.cmd('DATA')).code, 250, 'the script backend answers DATA with 250');
    await c.cmd('QUIT');
  });

  it('a sender the backend refuses: RCPT carries the refusal, DATA too, and no transaction is left open', async () => {
    const { p, b, c } = await setup({
      reply: (line) => (line.startsWith('MAIL') ? '550 5.7.1 <bad@example.org>: Sender address rejected\r\n' : line.startsWith('RCPT') || line === 'DATA' ? '503 5.5.1 Error: need MAIL command\r\n' : undefined),
    });
    assert.equal((await c.cmd('MAIL FROM:<bad@example.org>')).code, 250);
    const r = await c.cmd('RCPT TO:<b@example.net>');
    assert.equal(r.code, 550);
    assert.match(r.lines[0]!, /Sender address rejected/);
    const d = await c.cmd('DATA');
    assert.equal(d.code, 550);
    await c.cmd('QUIT');
    const rec = await p.waitFor((x) => x.event === 'session');
    assert.equal(rec.transactions, 0);
    assert.equal(rec.rcpts, 0);
    assert.deepEqual(session(b).slice(0, 2), ['MAIL FROM:<bad@example.org>', 'RCPT TO:<b@example.net>']);
  });

  it('a 421 to the held MAIL reaches the client in the RCPT’s place, and the session ends', async () => {
    const { p, c } = await setup({ reply: (line) => (line.startsWith('MAIL') ? '421 4.3.2 Shutting down\r\n' : undefined) });
    assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
    const r = await c.cmd('RCPT TO:<b@example.net>');
    assert.equal(r.code, 421);
    assert.match(r.lines[0]!, /Shutting down/);
    await c.waitClose();
    const rec = await p.waitFor((x) => x.event === 'session');
    assert.equal(rec.close, 'backend_failed');
  });

  it('RSET or QUIT after MAIL: the held MAIL never reaches the backend', async () => {
    const { b, c } = await setup();
    assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250);
    assert.equal((await c.cmd('RSET')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<second@example.org>')).code, 250);
    assert.equal((await c.cmd('QUIT')).code, 221);
    await until(() => b.conns.at(-1)!.closed || b.conns.at(-1)!.quit, 'the backend connection to end');
    assert.ok(!session(b).some((l) => l.startsWith('MAIL')), JSON.stringify(session(b)));
  });

  it('a backend without PIPELINING gets MAIL on its own, and its reply is the client’s', async () => {
    const { b, c } = await setup({
      ehlo: ['8BITMIME'],
      reply: (line) => (line.startsWith('MAIL') ? '250 2.1.0 Sender ok, from the backend\r\n' : undefined),
    });
    const m = await c.cmd('MAIL FROM:<a@example.org>');
    assert.match(m.lines[0]!, /from the backend/);
    assert.deepEqual(session(b), ['MAIL FROM:<a@example.org>']);
    await c.cmd('QUIT');
  });
});
