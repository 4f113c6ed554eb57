// RFC 4954 §4: an AUTH line may be 12288 octets, above limits.line_length (4096). A PLAIN
// initial response of 9-12 KB on the AUTH command line logs in (swaks and a raw socket
// client, the file verifier with an argon2 hash of a long password), while any other
// command line over line_length still gets `500 5.5.2 Line too long`, and an AUTH line over
// 12288 is refused too. On a listener with auth off, AUTH is held to line_length.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as argon2 from 'argon2';
import { startSink, type Sink } from '../../src/sink/index.js';
import { startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');
/** A password whose PLAIN initial response makes an `AUTH PLAIN <ir>` line of `octets`. */
const passwordFor = (octets: number, tail = 'x') => 'p'.repeat(Math.floor(((octets - 'AUTH PLAIN '.length) * 3) / 4) - '\0long\0'.length - tail.length) + tail;

describe('AUTH lines up to 12288 octets, other commands held to line_length', { timeout: 60_000 }, () => {
  let dir: string;
  let sink: Sink;
  let p: TestPostern;
  let ports: Record<string, number>;
  const longPw = passwordFor(12_000);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-auth-line-'));
    sink = await startSink({ xclient: true });
    // argon2, not bcrypt: bcrypt reads only 72 bytes of a password, argon2 all of them.
    await writeFile(join(dir, 'passwd'), `long:${await argon2.hash(longPw, { memoryCost: 4096, timeCost: 1 })}\n`);
    p = await startPostern(`hostname: line.test
listeners:
  - { name: submission, listen: 127.0.0.1:0, auth: optional }
  - { name: mx, listen: 127.0.0.1:0 }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [{ address: 127.0.0.1:${sink.address().port} }]
limits:
  line_length: 4096
auth:
  plaintext: true
  verifier: { type: file, path: ${join(dir, 'passwd')} }
log: { level: info }
`);
    ports = Object.fromEntries(Object.entries(p.postern.addresses()).map(([k, a]) => [k, a.port]));
  });
  after(async () => {
    await p?.stop();
    await sink?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('swaks: AUTH PLAIN with a 12000-octet command line logs in (235) and relays', { skip: swaksAvailable() ? false : 'swaks not installed' }, async () => {
    const r = await swaks(['--server', `127.0.0.1:${ports.submission}`, '--local-interface', '127.0.0.2', '--auth', 'PLAIN', '--auth-user', 'long', '--auth-password', longPw, '--from', 'long@example.org', '--to', 'x@example.net']);
    assert.equal(r.code, 0, r.transcript.replace(/[A-Za-z0-9+/=]{200,}/g, '<base64>'));
    // (assert.ok, not match: a failure would print 12 KB of base64)
    assert.ok(/ -> AUTH PLAIN [A-Za-z0-9+/=]{11900,}\r?\n/.test(r.transcript), 'swaks sent the initial response on the AUTH line');
    assert.ok(/<- +235 2\.7\.0/.test(r.transcript), r.transcript.replace(/[A-Za-z0-9+/=]{200,}/g, '<base64>'));
    const rec = await p.waitFor((x) => x.event === 'session' && (x.client as { address: string }).address === '127.0.0.2');
    assert.deepEqual(rec.auth, { user: 'long', mechanism: 'PLAIN' });
    assert.equal(rec.transactions, 1);
  });

  it('raw client: a 12000-octet AUTH line logs in, one wrong in its last octet gets 535; 12288 octets are read, more are 500 Line too long; 5 KB NOOP and MAIL are 500 Line too long', async () => {
    const c = await SmtpClient.connect(ports.submission!, { localAddress: '127.0.0.3' });
    await c.waitReplies(1);
    await c.cmd('EHLO raw.test');
    // Over line_length but not AUTH: refused as before, with the anomaly.
    assert.equal((await c.cmd(`NOOP ${'n'.repeat(5000)}`)).lines[0], '5.5.2 Line too long');
    assert.equal((await c.cmd(`MAIL FROM:<${'m'.repeat(5000)}@example.org>`)).code, 500);
    // Differs from the right one in its last octet only: the whole password was read.
    const wrong = `AUTH PLAIN ${plain('long', passwordFor(12_000, 'y'))}`;
    assert.ok(wrong.length > 11_900 && wrong.length <= 12_000, String(wrong.length));
    assert.equal((await c.cmd(wrong)).code, 535);
    const right = `AUTH PLAIN ${plain('long', longPw)}`;
    assert.equal((await c.cmd(right)).code, 235);
    await c.cmd('QUIT');

    const exact = `AUTH PLAIN ${'A'.repeat(12_288 - 'AUTH PLAIN '.length)}`;
    const d = await SmtpClient.connect(ports.submission!, { localAddress: '127.0.0.3' });
    await d.waitReplies(1);
    await d.cmd('EHLO raw.test');
    // 12288 octets exactly is read as an AUTH line (the base64 is then not a PLAIN message).
    assert.equal((await d.cmd(exact)).code, 501);
    assert.equal((await d.cmd(`${exact}AAAA`)).lines[0], '5.5.2 Line too long');
    // The session goes on: a 8 KB initial response in the same session is read (and wrong).
    assert.equal((await d.cmd(`AUTH PLAIN ${plain('long', longPw.slice(0, 6000))}`)).code, 535);
    await d.cmd('QUIT');
    // Each session logged its line_too_long (one anomaly of a kind per session).
    const mine = () => p.records.filter((r) => r.event === 'session' && (r.client as { address: string }).address === '127.0.0.3');
    for (let i = 0; i < 50 && mine().length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    const with3 = mine();
    assert.deepEqual(with3.map((r) => (r.anomalies as string[]).includes('line_too_long')), [true, true]);
  });

  it('a listener with auth off holds AUTH to line_length too', async () => {
    const c = await SmtpClient.connect(ports.mx!, { localAddress: '127.0.0.4' });
    await c.waitReplies(1);
    await c.cmd('EHLO mx.test');
    assert.equal((await c.cmd(`AUTH PLAIN ${plain('long', longPw)}`)).lines[0], '5.5.2 Line too long');
    assert.equal((await c.cmd(`AUTH PLAIN ${plain('long', 'short')}`)).code, 502);
    await c.cmd('QUIT');
  });
});
