import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { Authenticator } from '../../src/auth/authenticator.js';
import type { Credentials } from '../../src/auth/exchange.js';
import { FileVerifier } from '../../src/auth/file.js';
import { AuthFailureLimiter } from '../../src/auth/limiter.js';
import type { Verifier } from '../../src/auth/verifier.js';
import { LocalWindowCounter } from '../../src/state/windows.js';

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('AuthFailureLimiter', () => {
  it('refuses past per_ip failures within the window, and lets go once they slide out', async () => {
    const c = clock();
    const counter = new LocalWindowCounter(c.now);
    const l = new AuthFailureLimiter(counter, { per_ip: { count: 3, window: 60_000 }, per_user: null });
    for (let i = 0; i < 3; i++) {
      assert.equal(await l.check('192.0.2.1', `user${i}`), null);
      await l.recordFailure('192.0.2.1', `user${i}`);
      c.advance(1000);
    }
    const d = await l.check('192.0.2.1', 'someone-else');
    assert.deepEqual(d && { limit: d.limit, count: d.count, max: d.max, reply: d.reply.reply, delayMs: d.delayMs }, {
      limit: 'per_ip',
      count: 3,
      max: 3,
      reply: '454 4.7.0 Too many failed authentication attempts, try again later\r\n',
      delayMs: 3000,
    });
    // Another address is not affected.
    assert.equal(await l.check('192.0.2.2', 'user0'), null);
    // The first failure leaves the window 60 s after it happened.
    c.advance(60_000 - 3000 + 1);
    assert.equal(await l.check('192.0.2.1', 'x'), null);
    counter.close();
  });

  it('refuses past per_user failures from any address, user names compared without case', async () => {
    const counter = new LocalWindowCounter();
    const l = new AuthFailureLimiter(counter, { per_ip: null, per_user: { count: 2, window: 60_000 } });
    await l.recordFailure('192.0.2.1', 'Alice');
    await l.recordFailure('198.51.100.9', 'alice');
    assert.equal((await l.check('203.0.113.5', 'ALICE'))?.limit, 'per_user');
    assert.equal(await l.check('203.0.113.5', 'bob'), null);
    counter.close();
  });

  it('counts an IPv6 guesser across its whole /64', async () => {
    const counter = new LocalWindowCounter();
    const l = new AuthFailureLimiter(counter, { per_ip: { count: 2, window: 60_000 }, per_user: null });
    await l.recordFailure('2001:db8::1', 'a');
    await l.recordFailure('2001:db8::2', 'b');
    assert.equal((await l.check('2001:db8::ffff', 'c'))?.limit, 'per_ip');
    counter.close();
  });
});

describe('AuthFailureLimiter: known addresses (a spray must not lock the user out)', () => {
  const limits = (known_address?: number) => ({ per_ip: { count: 5, window: 600_000 }, per_user: { count: 3, window: 600_000 }, ...(known_address === undefined ? {} : { known_address }) });

  it('per_user refuses every address but one where the user logged in; failures there count per_ip only', async () => {
    const c = clock();
    const counter = new LocalWindowCounter(c.now);
    const l = new AuthFailureLimiter(counter, limits(3_600_000));
    await l.recordSuccess('192.0.2.10', 'alice');
    // The spray: one wrong password each from 6 addresses.
    for (let i = 1; i <= 6; i++) await l.recordFailure(`198.51.100.${i}`, 'alice');
    assert.equal((await l.check('198.51.100.7', 'alice'))?.limit, 'per_user');
    // Another address of the same /64 is the same client for IPv6; for IPv4 a neighbour is not.
    assert.equal((await l.check('192.0.2.11', 'alice'))?.limit, 'per_user');
    assert.equal(await l.check('192.0.2.10', 'ALICE'), null, 'the known address goes on (names without case)');
    // Known for alice only.
    for (let i = 1; i <= 3; i++) await l.recordFailure(`203.0.113.${i}`, 'bob');
    assert.equal((await l.check('192.0.2.10', 'bob'))?.limit, 'per_user');
    // Alice mistypes at home: per_ip counts it, per_user does not.
    for (let i = 0; i < 4; i++) await l.recordFailure('192.0.2.10', 'alice');
    assert.equal(await l.check('192.0.2.10', 'alice'), null);
    assert.equal(await counter.count('auth-fail:user:alice', 600_000), 6);
    await l.recordFailure('192.0.2.10', 'alice');
    assert.equal((await l.check('192.0.2.10', 'alice'))?.limit, 'per_ip');
    counter.close();
  });

  it('the exemption ends known_address after the last login, and a later login renews it', async () => {
    const c = clock();
    const counter = new LocalWindowCounter(c.now);
    const l = new AuthFailureLimiter(counter, limits(3_600_000));
    await l.recordSuccess('192.0.2.10', 'alice');
    c.advance(3_000_000);
    for (let i = 1; i <= 3; i++) await l.recordFailure(`198.51.100.${i}`, 'alice');
    assert.equal(await l.check('192.0.2.10', 'alice'), null);
    c.advance(600_001);
    for (let i = 1; i <= 3; i++) await l.recordFailure(`198.51.100.${i}`, 'alice');
    assert.equal((await l.check('192.0.2.10', 'alice'))?.limit, 'per_user', 'known no more after an hour');
    await l.recordSuccess('192.0.2.10', 'alice');
    assert.equal(await l.check('192.0.2.10', 'alice'), null);
    counter.close();
  });

  it('a user who logs in all the time leaves about 30 events in the key, not one per login', async () => {
    const c = clock();
    const counter = new LocalWindowCounter(c.now);
    const l = new AuthFailureLimiter(counter, limits());
    for (let i = 0; i < 2000; i++) {
      await l.recordSuccess('192.0.2.10', 'alice');
      c.advance(30 * 60_000);
    }
    const n = await counter.count('auth-fail:known:192.0.2.10:alice', 15 * 24 * 3600_000);
    assert.ok(n > 0 && n <= 31, `${n} events`);
    counter.close();
  });

  it('known_address 0 exempts no one (the old per_user)', async () => {
    const counter = new LocalWindowCounter();
    const l = new AuthFailureLimiter(counter, limits(0));
    await l.recordSuccess('192.0.2.10', 'alice');
    for (let i = 1; i <= 3; i++) await l.recordFailure(`198.51.100.${i}`, 'alice');
    assert.equal((await l.check('192.0.2.10', 'alice'))?.limit, 'per_user');
    counter.close();
  });
});

describe('Authenticator over a real password file', () => {
  let dir = '';
  let file = '';
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-auth-limiter-'));
    file = join(dir, 'passwd');
    writeFileSync(file, `alice:${await bcrypt.hash('right', 4)}\nbob:${await bcrypt.hash('bobs', 4)}\n`);
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const ctx = (address: string, attempt = 1) => ({
    client: { address, port: 40000 },
    local: { address: '127.0.0.1', port: 587 },
    tls: true,
    helo: 'client.example',
    attempt,
  });
  const plain = (user: string, password: string): Credentials => ({ mechanism: 'PLAIN', authzid: '', user, password });

  it('answers 235, 535 and, past the limit, 454 without asking the verifier', async () => {
    const counter = new LocalWindowCounter();
    const verifier = await FileVerifier.open(file);
    let asked = 0;
    // The real file verifier, with a count of how often it was asked.
    const counting: Verifier = {
      type: 'file',
      verify: (r) => (asked++, verifier.verify(r)),
      reload: () => verifier.reload(),
      close: () => verifier.close(),
    };
    const a = new Authenticator(counting, counter, { per_ip: { count: 2, window: 600_000 }, per_user: null }, { floodDelayMs: 10 });

    assert.deepEqual(await a.authenticate(plain('alice', 'right'), ctx('192.0.2.1')), { result: 'ok', user: 'alice', mechanism: 'PLAIN', reply: '235 2.7.0 Authentication successful\r\n' });
    const f1 = await a.authenticate(plain('alice', 'wrong'), ctx('192.0.2.1'));
    assert.deepEqual({ ...f1, reply: f1.reply.toString() }, { result: 'invalid', reply: 'SmtpError: 535 5.7.8 Authentication credentials invalid', delayMs: 0, close: false, reason: 'password mismatch' });
    await a.authenticate(plain('nobody', 'x'), ctx('192.0.2.1'));
    assert.equal(asked, 3);
    const flood = await a.authenticate(plain('alice', 'right'), ctx('192.0.2.1'));
    assert.equal(flood.result, 'flood');
    assert.equal(flood.result === 'flood' && flood.limit, 'per_ip');
    assert.equal(flood.reply.toString(), 'SmtpError: 454 4.7.0 Too many failed authentication attempts, try again later');
    assert.equal(flood.delayMs, 10);
    assert.equal(asked, 3, 'the verifier was not asked past the limit');
    // A successful login does not count, nor does another address's.
    assert.equal((await a.authenticate(plain('bob', 'bobs'), ctx('192.0.2.2'))).result, 'ok');
    counter.close();
  });

  it('refuses a PLAIN authzid naming another user before the verifier is asked, and counts no failure', async () => {
    const counter = new LocalWindowCounter();
    const verifier = await FileVerifier.open(file);
    let asked = 0;
    const counting: Verifier = { type: 'file', verify: (r) => (asked++, verifier.verify(r)), reload: () => verifier.reload(), close: () => verifier.close() };
    const a = new Authenticator(counting, counter, { per_ip: { count: 1, window: 600_000 }, per_user: null });
    const asBob: Credentials = { mechanism: 'PLAIN', authzid: 'bob', user: 'alice', password: 'right' };
    const r = await a.authenticate(asBob, ctx('192.0.2.9'));
    assert.deepEqual({ ...r, reply: r.reply.toString() }, {
      result: 'invalid',
      reply: 'SmtpError: 535 5.7.8 Authentication credentials invalid',
      delayMs: 0,
      close: false,
      reason: 'authzid differs from the user (RFC 4616 §2: nobody may act for another)',
    });
    assert.equal(asked, 0);
    // Not a failure: per_ip 1 would refuse the next attempt otherwise.
    assert.equal((await a.authenticate({ ...asBob, authzid: 'alice' }, ctx('192.0.2.9'))).result, 'ok');
    assert.equal(asked, 1);
    counter.close();
  });

  it('shares the counts between two processes\' Authenticators over one counter', async () => {
    // What the cluster and Redis counters give each worker: one set of counts.
    const shared = new LocalWindowCounter();
    const limits = { per_ip: null, per_user: { count: 3, window: 600_000 } };
    const w1 = new Authenticator(await FileVerifier.open(file), shared, limits, { floodDelayMs: 0 });
    const w2 = new Authenticator(await FileVerifier.open(file), shared, limits, { floodDelayMs: 0 });
    const results: string[] = [];
    for (let i = 0; i < 6; i++) {
      const w = i % 2 === 0 ? w1 : w2;
      results.push((await w.authenticate(plain('bob', `guess${i}`), ctx(`198.51.100.${i + 1}`))).result);
    }
    assert.deepEqual(results, ['invalid', 'invalid', 'invalid', 'flood', 'flood', 'flood']);
    shared.close();
  });
});
