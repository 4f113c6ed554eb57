// HeldMail: a MAIL held back and sent with the next command; a refusal of it stands in for
// the failures that followed it (session/held-mail.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeldMail } from '../../src/session/held-mail.js';
import type { Reply } from '../../src/smtp/reply.js';

const reply = (code: number, text = 'x'): Reply => ({ code, lines: [text], raw: Buffer.from(`${code} ${text}\r\n`) });

describe('HeldMail', () => {
  it('holds one MAIL; take() hands it over once, and its reply reaches the MAIL handler with no client reply of its own', () => {
    const m = new HeldMail();
    const seen: number[] = [];
    assert.equal(m.waiting, false);
    m.hold('MAIL FROM:<a@example.org>', (r) => (seen.push(r.code), r.raw));
    assert.equal(m.waiting, true);
    const t = m.take();
    assert.equal(t.line, 'MAIL FROM:<a@example.org>');
    assert.equal(m.waiting, false);
    assert.equal(t.handler(reply(250)), null);
    assert.deepEqual(seen, [250]);
  });

  it('after a refused MAIL went out, the failures that followed it become that refusal; successes stay', () => {
    const m = new HeldMail();
    m.hold('MAIL FROM:<spam@example.org>', () => null);
    const rcpt = (r: Reply) => r.raw;
    const t = m.take();
    const after = m.after(rcpt);
    const refusal = reply(550, 'sender refused');
    t.handler(refusal);
    assert.equal(m.refused(refusal), true);
    assert.equal(after(reply(503, 'need MAIL')), refusal.raw);
    assert.equal(String(after(reply(250))), '250 x\r\n');
  });

  it('before any held MAIL went out, and after drop(), handlers are left as they are', () => {
    const m = new HeldMail();
    const h = (r: Reply) => r.raw;
    assert.equal(m.after(h), h);
    m.hold('MAIL FROM:<a@example.org>', () => null);
    m.take().handler(reply(451));
    m.drop();
    assert.equal(m.after(h), h);
    assert.equal(m.waiting, false);
    assert.equal(m.refused(reply(451)), false);
  });
});
