// session/transaction.ts: the open transaction, recipients as answered in command order,
// the session's counts, and the transaction record.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Transactions, errorText } from '../../src/session/transaction.js';
import { SmtpError } from '../../src/smtp/errors.js';
import { ReplyParser, type Reply } from '../../src/smtp/reply.js';

const reply = (text: string): Reply => new ReplyParser().push(Buffer.from(text))[0]!;
const tooMany = () => new SmtpError(452, '4.5.3', 'Too many recipients');

describe('Transactions', () => {
  it('a pipelined group: refusals by Postern come before the backend’s answers, the record keeps command order', () => {
    const t = new Transactions();
    // MAIL, RCPT a, RCPT b (over RCPTMAX: refused at once), RCPT c, DATA ... all sent together.
    const opened = t.mail('s@example.org');
    const a = t.rcpt('a@example.net');
    const b = t.rcpt('b@example.net');
    t.refuse(b, tooMany());
    const c = t.rcpt('c@example.net');
    assert.equal(t.open === null, true, 'no transaction until MAIL is answered');
    opened(true);
    assert.equal(t.open?.from, 's@example.org');
    t.answer(a, reply('250 2.1.5 Ok\r\n'));
    t.answer(c, reply('550 5.1.1 <c@example.net>: Recipient address rejected\r\n'));
    assert.deepEqual(t.open?.recipients, [
      { address: 'a@example.net', code: 250, reply: '250 2.1.5 Ok' },
      { address: 'b@example.net', code: 452, reply: '452 4.5.3 Too many recipients' },
      { address: 'c@example.net', code: 550, reply: '550 5.1.1 <c@example.net>: Recipient address rejected' },
    ]);
    assert.equal(t.open?.rcpts, 1);
    assert.equal(t.open?.firstRcpt, 'a@example.net');
    const rec = t.end(reply('250 2.0.0 Ok: queued as 4XyZ1234\r\n'), null, 'conn1', '127.0.0.1:25');
    assert.deepEqual(rec, {
      event: 'transaction',
      conn: 'conn1',
      from: 's@example.org',
      rcpts: 1,
      size: 0,
      reply: '250 2.0.0 Ok: queued as 4XyZ1234',
      result: 'accepted',
      backend: '127.0.0.1:25',
      queue_id: '4XyZ1234',
      recipients: [
        { address: 'a@example.net', code: 250, reply: '250 2.1.5 Ok' },
        { address: 'b@example.net', code: 452, reply: '452 4.5.3 Too many recipients' },
        { address: 'c@example.net', code: 550, reply: '550 5.1.1 <c@example.net>: Recipient address rejected' },
      ],
    });
    assert.equal(t.open, null);
  });

  it('backend answers arriving in any order still land in their own entries', () => {
    const t = new Transactions();
    t.mail('s@x')(true);
    const entries = ['r0@y', 'r1@y', 'r2@y', 'r3@y'].map((a) => t.rcpt(a));
    for (const i of [2, 0, 3, 1]) t.answer(entries[i]!, reply(`250 ok ${i}\r\n`));
    assert.deepEqual(
      t.open?.recipients.map((r) => [r.address, r.reply]),
      [
        ['r0@y', '250 ok 0'],
        ['r1@y', '250 ok 1'],
        ['r2@y', '250 ok 2'],
        ['r3@y', '250 ok 3'],
      ],
    );
    assert.equal(t.open?.firstRcpt, 'r2@y', 'the first the backend accepted');
  });

  it('counts: transactions ended and recipients accepted over the session', () => {
    const t = new Transactions();
    for (let i = 0; i < 3; i++) {
      t.mail(`s${i}@x`)(true);
      t.answer(t.rcpt('a@y'), reply('250 ok\r\n'));
      t.answer(t.rcpt('b@y'), reply('250 ok\r\n'));
      t.answer(t.rcpt('c@y'), reply('450 4.2.0 try later\r\n'));
      t.refuse(t.rcpt('d@y'), tooMany());
      t.end(reply('250 ok\r\n'), null, 'c', null);
    }
    assert.equal(t.count, 3);
    assert.equal(t.rcpts, 6);
  });

  it('a refused MAIL opens nothing: its end yields no record and counts nothing', () => {
    const t = new Transactions();
    const opened = t.mail('s@x');
    t.refuse(t.rcpt('a@y'), new SmtpError(503, '5.5.1', 'Need MAIL command'));
    opened(false);
    assert.equal(t.open, null);
    assert.equal(t.end(reply('250 ok\r\n'), null, 'c', null), null);
    assert.equal(t.count, 0);
  });

  it('a sender the backend refused: a record with its reply and result rejected (4xx: tempfail), counted, nothing open', () => {
    const t = new Transactions();
    const opened = t.mail('bad@example.org');
    opened(true); // held MAIL: Postern's own 250 opened it
    const entry = t.rcpt('a@example.net');
    const refusal = reply('553 5.7.1 <bad@example.org>: Sender address rejected\r\n');
    opened(false);
    t.answer(entry, refusal); // the RCPT's 503 stands for the MAIL refusal
    const rec = t.refusedSender('bad@example.org', refusal, 'c9', '127.0.0.1:25');
    assert.deepEqual(rec, {
      event: 'transaction',
      conn: 'c9',
      from: 'bad@example.org',
      rcpts: 0,
      size: 0,
      reply: '553 5.7.1 <bad@example.org>: Sender address rejected',
      result: 'rejected',
      backend: '127.0.0.1:25',
      queue_id: null,
      recipients: [],
    });
    assert.equal(t.open, null);
    assert.equal(t.count, 1);
    assert.equal(t.rcpts, 0);
    assert.equal(t.end(reply('250 ok\r\n'), null, 'c9', null), null, 'a later final reply adds no second record');
    const hidden = t.refusedSender('bad@example.org', reply('451 4.3.0 <bad@example.org>: try later\r\n'), 'c9', null, false);
    assert.equal(hidden.from, null);
    assert.equal(hidden.reply, '451 4.3.0 <->: try later');
    assert.equal(hidden.result, 'tempfail');
  });

  it('a message refused by Postern (body poisoned): reply is the refusal, no queue id', () => {
    const t = new Transactions();
    t.mail('s@x')(true);
    t.answer(t.rcpt('a@y'), reply('250 ok\r\n'));
    t.open!.size = 1234;
    const err = new SmtpError(552, '5.3.4', 'Message size exceeds fixed limit');
    const rec = t.end(null, err, 'c', 'b:25');
    assert.equal(rec?.reply, '552 5.3.4 Message size exceeds fixed limit');
    assert.equal(rec?.reply, errorText(err));
    assert.equal(rec?.queue_id, null);
    assert.equal(rec?.size, 1234, 'the size of a refused message is counted');
    assert.equal(t.count, 1);
  });

  it('a message the backend refuses has no queue id, even if its text looks like one', () => {
    const t = new Transactions();
    t.mail('s@x')(true);
    const rec = t.end(reply('554 5.7.1 rejected: id=abc queued as XYZ\r\n'), null, 'c', null);
    assert.equal(rec?.queue_id, null);
    assert.equal(rec?.reply, '554 5.7.1 rejected: id=abc queued as XYZ');
  });

  it('an Exim acceptance gives its id; a multi-line reply is recorded by its last line', () => {
    const t = new Transactions();
    t.mail('s@x')(true);
    assert.equal(t.end(reply('250 OK id=1rAbCd-000Xyz-Ab\r\n'), null, 'c', null)?.queue_id, '1rAbCd-000Xyz-Ab');
    t.mail('s@x')(true);
    const rec = t.end(reply('250-2.0.0 Ok: queued as 4AbC\r\n250 2.0.0 have a nice day\r\n'), null, 'c', null);
    assert.equal(rec?.queue_id, '4AbC');
    assert.equal(rec?.reply, '250 2.0.0 have a nice day');
  });

  it('reset drops the open transaction without a record', () => {
    const t = new Transactions();
    t.mail('s@x')(true);
    t.reset();
    assert.equal(t.open, null);
    assert.equal(t.end(null, tooMany(), 'c', null), null);
    assert.equal(t.count, 0);
  });

  it('recipients of one transaction never show up in the next', () => {
    const t = new Transactions();
    t.mail('one@x')(true);
    t.answer(t.rcpt('a@y'), reply('250 ok\r\n'));
    const first = t.end(reply('250 ok\r\n'), null, 'c', null);
    t.mail('two@x')(true);
    t.answer(t.rcpt('b@y'), reply('250 ok\r\n'));
    const second = t.end(reply('250 ok\r\n'), null, 'c', null);
    assert.deepEqual(first?.recipients.map((r) => r.address), ['a@y']);
    assert.deepEqual(second?.recipients.map((r) => r.address), ['b@y']);
  });

  it(
    'an ended transaction’s record does not change when a RCPT follows without a new MAIL',
    () => {
      const t = new Transactions();
      t.mail('one@x')(true);
      t.answer(t.rcpt('a@y'), reply('250 ok\r\n'));
      const rec = t.end(reply('250 ok\r\n'), null, 'c', null);
      // The client sends RCPT with no MAIL; the backend answers 503.
      t.answer(t.rcpt('stray@y'), reply('503 5.5.1 Error: need MAIL command\r\n'));
      assert.deepEqual(rec?.recipients.map((r) => r.address), ['a@y']);
    },
  );
  it('MAIL answered after a pipelined RSET does not reopen the transaction the RSET ended', () => {
    const t = new Transactions();
    const opened = t.mail('s@example.org');
    t.rcpt('a@example.net');
    t.reset(); // RSET read before MAIL's reply came back
    opened(true);
    assert.equal(t.open === null, true, 'the RSET ended it');
    const next = t.mail('s2@example.org');
    next(true);
    assert.equal(t.open?.from, 's2@example.org');
    assert.deepEqual(t.open?.recipients, []);
  });
});
