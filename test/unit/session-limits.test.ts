// session/limits.ts: LIMITS (RFC 9422) and SIZE (RFC 1870) counters, from a real config.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, type LimitsConfig } from '../../src/config/index.js';
import type { LimitName } from '../../src/observe/records.js';
import { SessionLimits, type BackendLimits } from '../../src/session/limits.js';
import { SmtpError } from '../../src/smtp/errors.js';

function config(limits: string): LimitsConfig {
  return parseConfig(`listeners:
  - name: smtp
    listen: 127.0.0.1:2525
backends:
  servers:
    - address: 127.0.0.1:2526
limits:
${limits}
`).limits;
}

const NO_BACKEND: BackendLimits = { size: null, limits: { mailmax: null, rcptmax: null, rcptdomainmax: null } };

function limits(cfg: LimitsConfig, backend: BackendLimits = NO_BACKEND): { l: SessionLimits; hits: LimitName[] } {
  const hits: LimitName[] = [];
  const l = new SessionLimits(
    () => cfg,
    () => backend,
    (limit) => hits.push(limit),
  );
  return { l, hits };
}

/** The SmtpError `fn` throws (fails if it throws nothing or something else). */
function refusal(fn: () => void): SmtpError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SmtpError, String(err));
    return err;
  }
  assert.fail('expected a refusal');
}

describe('SessionLimits', () => {
  it('the config values are what is in force when the backend side announces nothing', () => {
    const { l } = limits(config('  mailmax: 5\n  rcptmax: 7\n  rcptdomainmax: 3\n  message_size: 1MB'));
    assert.deepEqual(l.inForce(), { mailmax: 5, rcptmax: 7, rcptdomainmax: 3 });
    assert.equal(l.size(), 1024 * 1024);
  });

  it('MAILMAX counts every MAIL, refused ones too, across transactions; over it: true and one rejection', () => {
    const { l, hits } = limits(config('  mailmax: 2'));
    assert.equal(l.mailOverMax(), false);
    l.newTransaction(); // RSET/EHLO do not give MAILs back
    assert.equal(l.mailOverMax(), false, 'a second MAIL (say the first was refused 501) still fits');
    l.newTransaction();
    assert.equal(l.mailOverMax(), true);
    assert.deepEqual(hits, ['mailmax']);
    assert.deepEqual(l.rejections, { mailmax: 1 });
  });

  it('mailmax null: no limit', () => {
    const { l } = limits(config('  mailmax: null'));
    for (let i = 0; i < 1000; i++) assert.equal(l.mailOverMax(), false);
    assert.deepEqual(l.rejections, {});
  });

  it('RCPTMAX counts RCPT commands per transaction: the one over gets 452 4.5.3, and so does each after it', () => {
    const { l, hits } = limits(config('  rcptmax: 3\n  rcptdomainmax: null'));
    for (let i = 0; i < 3; i++) l.checkRcpt(`r${i}@example.org`);
    const err = refusal(() => l.checkRcpt('r3@example.org'));
    assert.equal(err.smtpCode, 452);
    assert.equal(err.enhanced, '4.5.3');
    assert.match(err.text, /Too many recipients/);
    refusal(() => l.checkRcpt('r4@example.org'));
    assert.deepEqual(l.rejections, { rcptmax: 2 });
    assert.deepEqual(hits, ['rcptmax', 'rcptmax']);
    // A new transaction starts the count over.
    l.newTransaction();
    for (let i = 0; i < 3; i++) l.checkRcpt(`s${i}@example.org`);
    refusal(() => l.checkRcpt('s3@example.org'));
  });

  it('RCPTDOMAINMAX: domains compare without case; a refused domain is not counted; known domains still pass', () => {
    const { l } = limits(config('  rcptmax: null\n  rcptdomainmax: 2'));
    l.checkRcpt('a@Example.COM');
    l.checkRcpt('b@example.com');
    l.checkRcpt('c@EXAMPLE.com');
    l.checkRcpt('d@other.org');
    const err = refusal(() => l.checkRcpt('e@third.net'));
    assert.equal(err.smtpCode, 452);
    assert.equal(err.enhanced, '4.5.3');
    assert.match(err.text, /Too many recipient domains/);
    l.checkRcpt('f@OTHER.ORG');
    refusal(() => l.checkRcpt('g@third.net'));
    assert.deepEqual(l.rejections, { rcptdomainmax: 2 });
    l.newTransaction();
    l.checkRcpt('h@third.net');
    l.checkRcpt('i@fourth.net');
    refusal(() => l.checkRcpt('j@example.com'));
  });

  it('RCPTDOMAINMAX: a U-label and its A-label are one domain (any case, NFC or NFD)', () => {
    const { l } = limits(config('  rcptmax: null\n  rcptdomainmax: 2'));
    l.checkRcpt('a@bücher.example');
    l.checkRcpt('b@xn--bcher-kva.example');
    l.checkRcpt('c@XN--BCHER-KVA.EXAMPLE');
    l.checkRcpt('d@BÜCHER.example');
    l.checkRcpt('e@bu\u0308cher.example'); // NFD: u + combining diaeresis
    l.checkRcpt('f@other.example');
    assert.deepEqual(l.rejections, {}, 'two domains so far');
    refusal(() => l.checkRcpt('g@dritte.example'));
    refusal(() => l.checkRcpt('h@straße.example'));
  });

  it('the backend’s LIMITS lower ours, never raise them', () => {
    const backend: BackendLimits = { size: null, limits: { mailmax: 1, rcptmax: 50, rcptdomainmax: null } };
    const { l } = limits(config('  mailmax: 5\n  rcptmax: 2\n  rcptdomainmax: 3'), backend);
    assert.deepEqual(l.inForce(), { mailmax: 1, rcptmax: 2, rcptdomainmax: 3 });
    assert.equal(l.mailOverMax(), false);
    assert.equal(l.mailOverMax(), true, 'the backend’s MAILMAX=1 is the limit');
  });

  it('our null (no limit) takes the backend’s value', () => {
    const backend: BackendLimits = { size: null, limits: { mailmax: null, rcptmax: 1, rcptdomainmax: null } };
    const { l } = limits(config('  rcptmax: null\n  rcptdomainmax: null'), backend);
    l.checkRcpt('a@x.example');
    assert.equal(refusal(() => l.checkRcpt('b@x.example')).smtpCode, 452);
  });

  it('what the backend side announces is read at each check (a bind in mid-session lowers the limits)', () => {
    const cfg = config('  rcptmax: 10\n  message_size: 1000');
    const state: { backend: BackendLimits } = { backend: NO_BACKEND };
    const l = new SessionLimits(
      () => cfg,
      () => state.backend,
      () => undefined,
    );
    assert.equal(l.size(), 1000);
    state.backend = { size: 500, limits: { mailmax: null, rcptmax: 1, rcptdomainmax: null } };
    assert.equal(l.size(), 500);
    l.checkRcpt('a@x.example');
    assert.equal(refusal(() => l.checkRcpt('b@x.example')).smtpCode, 452);
  });

  it('SIZE in force is the smaller of ours and the backend’s; a larger backend SIZE changes nothing', () => {
    assert.equal(limits(config('  message_size: 1000'), { ...NO_BACKEND, size: 400 }).l.size(), 400);
    assert.equal(limits(config('  message_size: 1000'), { ...NO_BACKEND, size: 4000 }).l.size(), 1000);
  });

  it('MAIL SIZE=: absent passes, bad syntax is 501 5.5.4, over the limit 552 5.3.4, at the limit passes', () => {
    const { l, hits } = limits(config('  message_size: 1000'));
    l.checkDeclaredSize(undefined);
    l.checkDeclaredSize(null);
    l.checkDeclaredSize('0');
    l.checkDeclaredSize('1000');
    for (const bad of ['', 'abc', '1e3', '-1', '+5', '0x10', '10 ', '1'.repeat(21)]) {
      const err = refusal(() => l.checkDeclaredSize(bad));
      assert.equal(err.smtpCode, 501, JSON.stringify(bad));
      assert.equal(err.enhanced, '5.5.4');
    }
    const over = refusal(() => l.checkDeclaredSize('1001'));
    assert.equal(over.smtpCode, 552);
    assert.equal(over.enhanced, '5.3.4');
    // 20 digits parse (beyond 2^53 loses precision, but stays over any limit).
    assert.equal(refusal(() => l.checkDeclaredSize('9'.repeat(20))).smtpCode, 552);
    // A declared size refusal is not a LIMITS rejection: the session counts message_size itself.
    assert.deepEqual(hits, []);
  });

  it('hit() adds up per limit and tells the session each time', () => {
    const { l, hits } = limits(config('  mailmax: 1'));
    l.hit('message_size');
    l.hit('message_size');
    l.hit('rcptmax');
    assert.deepEqual(l.rejections, { message_size: 2, rcptmax: 1 });
    assert.deepEqual(hits, ['message_size', 'message_size', 'rcptmax']);
  });
});
