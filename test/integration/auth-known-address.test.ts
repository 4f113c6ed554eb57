// auth.failures.per_user against a password spray (issue 21): an attacker sprays wrong
// passwords for alice from many addresses. Past per_user, every address that never logged
// in as alice gets 454 4.7.0 (auth_flood) without the verifier being asked, while alice,
// from the address she logged in from before, still logs in with her password; her own
// typo there is a 535 from the verifier, not a lock-out. Real sockets, the file verifier.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { startSink, type Sink } from '../../src/sink/index.js';
import { startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

/** One connection: EHLO, AUTH PLAIN, QUIT; the AUTH reply's code. */
async function attempt(port: number, localAddress: string, user: string, pass: string): Promise<number> {
  const c = await SmtpClient.connect(port, { localAddress });
  await c.waitReplies(1);
  await c.cmd('EHLO spray.test');
  const r = await c.cmd(`AUTH PLAIN ${plain(user, pass)}`, 8000);
  await c.cmd('QUIT');
  return r.code;
}

describe('per_user under a password spray: the attack is refused, the user still logs in', { timeout: 60_000 }, () => {
  let dir: string;
  let sink: Sink;
  let p: TestPostern;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-auth-spray-'));
    sink = await startSink({ xclient: true });
    await writeFile(join(dir, 'passwd'), `alice:${await bcrypt.hash('alice-pw', 4)}\n`);
    p = await startPostern(`hostname: spray.test
listeners:
  - { name: submission, listen: 127.0.0.1:0, auth: optional }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [{ address: 127.0.0.1:${sink.address().port} }]
auth:
  plaintext: true
  verifier: { type: file, path: ${join(dir, 'passwd')} }
  failures: { per_ip: 20/10m, per_user: 3/10m }
log: { level: info }
`);
  });
  after(async () => {
    await p?.stop();
    await sink?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('sprayers get 535 then 454 (auth_flood); alice at her usual address gets 235, a new address 454', async () => {
    const home = '127.0.0.40';
    assert.equal(await attempt(p.port, home, 'alice', 'alice-pw'), 235, 'alice logs in before the attack');
    // The spray: one guess from each address; the first 3 reach the verifier.
    const codes: number[] = [];
    for (let i = 41; i <= 43; i++) codes.push(await attempt(p.port, `127.0.0.${i}`, 'alice', `guess-${i}`));
    codes.push(...(await Promise.all([44, 45, 46, 47, 48, 49].map((i) => attempt(p.port, `127.0.0.${i}`, 'alice', `guess-${i}`)))));
    assert.deepEqual(codes, [535, 535, 535, 454, 454, 454, 454, 454, 454]);
    const floods = p.records.filter((r) => r.event === 'anomaly' && r.kind === 'auth_flood');
    assert.equal(floods.length, 6);
    assert.match(String(floods[0]!.detail), /auth\.failures\.per_user/);
    // During the attack: alice from home, again and again.
    for (let i = 0; i < 3; i++) assert.equal(await attempt(p.port, home, 'alice', 'alice-pw'), 235, `alice from home, try ${i + 1}`);
    // Her typo at home is the verifier's 535 (not a lock-out), and does not feed per_user.
    assert.equal(await attempt(p.port, home, 'alice', 'typo'), 535);
    assert.equal(await attempt(p.port, home, 'alice', 'alice-pw'), 235);
    // Anywhere she never logged in from, the name stays locked for the window.
    assert.equal(await attempt(p.port, '127.0.0.50', 'alice', 'alice-pw'), 454);
  });
});
