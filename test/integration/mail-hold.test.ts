// MAIL held back and sent with the next command (issue 17): a client that waits for each
// reply costs the backend one round trip fewer per message. What the client learns must
// stay true: a sender the backend refuses is refused at RCPT (as smtpd_delay_reject does),
// a 421 to the held MAIL reaches the client, a MAIL dropped by RSET or QUIT never reaches the
// backend, and a backend without PIPELINING gets MAIL on its own, as before.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { SMTPServer } from 'smtp-server';
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
    // The refused sender is one transaction record (issue 21); no recipient was accepted.
    assert.equal(rec.transactions, 1);
    assert.equal(rec.rcpts, 0);
    const tx = p.records.filter((x) => x.event === 'transaction' && x.conn === rec.conn);
    assert.equal(tx.length, 1);
    assert.equal(tx[0]!.result, 'rejected');
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

// Issue 21: the backend's refusal of a sender is a transaction record (once, with its reply
// and `result: rejected`) and counts in postern_messages_total, whether the MAIL was held
// (the refusal arrives with the first RCPT, after Postern's own 250) or sent on its own.
describe('a sender the backend refuses leaves a transaction record', () => {
  const servers: SMTPServer[] = [];
  const postern: TestPostern[] = [];
  after(async () => {
    for (const p of postern) await p.stop();
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  });

  /** smtp-server refusing MAIL FROM:<bad@...> with 553; `pipelining: false` hides PIPELINING (no hold). */
  async function refusingBackend(pipelining: boolean): Promise<{ address: string; delivered: string[] }> {
    const delivered: string[] = [];
    const s = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      hidePIPELINING: !pipelining,
      logger: false,
      onMailFrom(address, _session, cb) {
        if (address.address.startsWith('bad@')) {
          cb(Object.assign(new Error(`<${address.address}>: Sender address rejected: not ours`), { responseCode: 553 }));
        } else cb();
      },
      onData(stream, session, cb) {
        stream.resume();
        stream.on('end', () => {
          delivered.push(session.envelope.mailFrom ? session.envelope.mailFrom.address : '<>');
          cb();
        });
      },
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { address: `127.0.0.1:${(s.server.address() as AddressInfo).port}`, delivered };
  }

  const rejected = async (p: TestPostern): Promise<number> =>
    (await p.postern.metrics.messages.get()).values.find((v) => v.labels.result === 'rejected')?.value ?? 0;

  for (const pipelining of [true, false]) {
    it(`${pipelining ? 'held MAIL (backend with PIPELINING)' : 'MAIL sent on its own (no PIPELINING)'}: one record with the sender, the backend's 553 and result rejected; nothing delivered`, async () => {
      const backend = await refusingBackend(pipelining);
      const p = await startPostern(basicYaml([backend.address]).replace('identity: xclient', 'identity: none'));
      postern.push(p);
      const c = await SmtpClient.connect(p.port);
      await c.waitReplies(1);
      await c.cmd('EHLO refused-sender.test');
      const m = await c.cmd('MAIL FROM:<bad@example.org>');
      assert.equal(m.code, pipelining ? 250 : 553, pipelining ? 'held: Postern answers MAIL itself' : 'the backend answers MAIL');
      const r = await c.cmd('RCPT TO:<b@example.net>');
      assert.equal(r.code, pipelining ? 553 : 503);
      if (pipelining) assert.match(r.lines[0]!, /Sender address rejected/);
      assert.ok((await c.cmd('DATA')).code >= 500);
      // A sender the backend takes, after it: a second, ordinary transaction.
      assert.equal((await c.cmd('RSET')).code, 250);
      assert.equal((await c.cmd('MAIL FROM:<good@example.org>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<b@example.net>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      assert.equal((await c.cmd('Subject: ok\r\n\r\nbody\r\n.')).code, 250);
      assert.equal((await c.cmd('QUIT')).code, 221);
      const session = await p.waitFor((x) => x.event === 'session' && x.helo === 'refused-sender.test');
      const txs = p.records.filter((x) => x.event === 'transaction' && x.conn === session.conn);
      assert.equal(txs.length, 2, JSON.stringify(txs));
      const [bad, good] = txs;
      assert.equal(bad!.from, 'bad@example.org');
      assert.match(String(bad!.reply), /^553 .*Sender address rejected: not ours/);
      assert.equal(bad!.result, 'rejected');
      assert.equal(bad!.rcpts, 0);
      assert.equal(bad!.size, 0);
      assert.equal(bad!.queue_id, null);
      assert.equal(bad!.backend, backend.address);
      assert.equal(good!.from, 'good@example.org');
      assert.equal(good!.result, 'accepted');
      assert.equal(session.transactions, 2, "the session's count agrees with its records");
      assert.equal(session.rcpts, 1);
      assert.deepEqual(backend.delivered, ['good@example.org'], 'nothing from the refused sender reached the mailbox');
      assert.equal(await rejected(p), 1, 'postern_messages_total{result="rejected"}');
    });
  }
});
