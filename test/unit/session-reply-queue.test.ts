// The ordered reply queue (RFC 2920 §3.1: replies in command order), driven directly: a
// recording sink stands for the client socket, backend replies are parsed from bytes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplyQueue, type ReplySink } from '../../src/session/reply-queue.js';
import { ReplyParser, type Reply } from '../../src/smtp/reply.js';

interface Write {
  chunks: (string | Buffer)[];
  done: (() => void) | null;
}

/** A sink that records each write; `done` callbacks run only when the test says so. */
function recorder(): { sink: ReplySink; writes: Write[]; text(): string; finish(): void } {
  const writes: Write[] = [];
  return {
    sink: { write: (chunks, done) => void writes.push({ chunks, done }) },
    writes,
    text: () => writes.map((w) => w.chunks.map((c) => c.toString()).join('')).join(''),
    finish: () => {
      for (const w of writes.splice(0)) w.done?.();
    },
  };
}

const reply = (text: string): Reply => {
  const r = new ReplyParser().push(Buffer.from(text));
  assert.equal(r.length, 1);
  return r[0]!;
};
const relay = (r: Reply) => r.raw;

describe('ReplyQueue', () => {
  it('own replies go out at once, one write each, in order', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    q.reply('250 a\r\n');
    q.reply('250 b\r\n');
    assert.equal(rec.writes.length, 2);
    assert.equal(rec.text(), '250 a\r\n250 b\r\n');
    assert.equal(q.owed, 0);
  });

  it('a pipelined group: backend replies and own refusals leave in command order', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    // MAIL (backend), RCPT refused by Postern, RCPT (backend), DATA (backend)
    q.expect(relay);
    q.reply('452 4.5.3 Too many recipients\r\n');
    q.expect(relay);
    q.expect(relay);
    assert.equal(rec.writes.length, 0, 'the refusal waits for MAIL’s reply');
    assert.equal(q.owed, 4);
    assert.equal(q.pendingBackend, 3);
    assert.ok(q.backendReply(reply('250 2.1.0 Ok\r\n')));
    assert.equal(rec.text(), '250 2.1.0 Ok\r\n452 4.5.3 Too many recipients\r\n');
    assert.equal(rec.writes.length, 1, 'MAIL’s reply and the refusal after it: one write');
    assert.ok(q.backendReply(reply('250 2.1.5 Ok\r\n')));
    assert.ok(q.backendReply(reply('354 End data with <CR><LF>.<CR><LF>\r\n')));
    assert.equal(rec.text(), '250 2.1.0 Ok\r\n452 4.5.3 Too many recipients\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n');
    assert.equal(q.owed, 0);
    assert.equal(q.pendingBackend, 0);
  });

  it('a reserved slot filled late holds back everything after it, then all of it goes in one write', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    const mail = q.reserve(); // MAIL while the backend is being chosen
    q.reply('250 b\r\n');
    q.reply('250 c\r\n');
    assert.equal(rec.writes.length, 0);
    assert.equal(q.owed, 3);
    q.fill(mail, '451 4.4.1 No backend\r\n');
    assert.equal(rec.writes.length, 1);
    assert.deepEqual(
      rec.writes[0]!.chunks.map(String),
      ['451 4.4.1 No backend\r\n', '250 b\r\n', '250 c\r\n'],
    );
  });

  it('a reserved slot can be handed to the backend (expect with slot) and keeps its place', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    const slot = q.reserve();
    q.reply('250 later\r\n');
    q.expect(relay, slot);
    assert.equal(q.pendingBackend, 1);
    q.backendReply(reply('250 first\r\n'));
    assert.equal(rec.text(), '250 first\r\n250 later\r\n');
  });

  it('the backend handler decides what the client gets: rewritten, or swallowed (null)', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    q.expect(() => null);
    q.expect((r) => `${r.code} rewritten\r\n`);
    q.backendReply(reply('250 swallowed\r\n'));
    q.backendReply(reply('550 5.1.1 no\r\n'));
    assert.equal(rec.text(), '550 rewritten\r\n');
  });

  it('a backend reply nobody asked for is refused (false) and writes nothing', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    assert.equal(q.backendReply(reply('421 4.4.2 closing\r\n')), false);
    assert.equal(rec.writes.length, 0);
  });

  it('internal slots (Postern’s own EHLO to the backend) are not owed to the client and send nothing when swallowed', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    q.reply('250-postern greets x\r\n250 PIPELINING\r\n');
    q.expect(() => null, undefined, null, true);
    q.expect(relay);
    assert.equal(q.owed, 1, 'the internal EHLO is not counted');
    assert.equal(q.pendingBackend, 2);
    q.backendReply(reply('250 backend ehlo\r\n'));
    assert.equal(q.owed, 1);
    q.backendReply(reply('250 2.1.0 Ok\r\n'));
    assert.equal(q.owed, 0);
    assert.equal(rec.text(), '250-postern greets x\r\n250 PIPELINING\r\n250 2.1.0 Ok\r\n');
  });

  it('failBackend: the first owed reply is replaced, every slot after it is dropped', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    q.reply('250 ehlo\r\n');
    q.expect(relay); // MAIL
    q.expect(relay); // RCPT
    q.reply('452 refused in place\r\n'); // after the RCPT
    q.expect(relay); // DATA
    q.backendReply(reply('250 mail ok\r\n'));
    let flushed = 0;
    q.failBackend('421 4.4.2 Backend connection lost\r\n', () => flushed++);
    assert.equal(rec.text(), '250 ehlo\r\n250 mail ok\r\n421 4.4.2 Backend connection lost\r\n');
    assert.equal(q.owed, 0);
    assert.equal(q.pendingBackend, 0);
    assert.equal(flushed, 0, 'not before the write is done');
    rec.finish();
    assert.equal(flushed, 1);
    // A late reply from the dead backend finds no slot.
    assert.equal(q.backendReply(reply('250 late\r\n')), false);
    assert.equal(rec.writes.length, 0);
  });

  it('failBackend behind an unfilled reserved slot waits for it, then sends both', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    const held = q.reserve();
    q.expect(relay);
    q.reply('250 dropped\r\n');
    q.failBackend('421 lost\r\n', null);
    assert.equal(rec.writes.length, 0);
    q.fill(held, '250 held\r\n');
    assert.equal(rec.text(), '250 held\r\n421 lost\r\n');
  });

  it('failBackend with nothing owed by the backend is an ordinary reply at the end', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    q.reply('250 a\r\n');
    let flushed = false;
    q.failBackend('421 lost\r\n', () => (flushed = true));
    assert.equal(rec.text(), '250 a\r\n421 lost\r\n');
    rec.finish();
    assert.ok(flushed);
  });

  it('failBackend with an empty text sends nothing but still runs the callback, at once', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    q.expect(relay);
    q.expect(relay);
    let flushed = 0;
    q.failBackend('', () => flushed++);
    assert.equal(rec.writes.length, 0);
    assert.equal(flushed, 1);
    assert.equal(q.owed, 0);
  });

  it('flushed callbacks run after the write that carried their slot is done, in slot order', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    const order: string[] = [];
    const a = q.reserve();
    q.reply('250 b\r\n', () => order.push('b'));
    q.reply('221 c\r\n', () => order.push('c'));
    q.fill(a, '250 a\r\n', () => order.push('a'));
    assert.equal(rec.writes.length, 1);
    assert.deepEqual(order, []);
    rec.finish();
    assert.deepEqual(order, ['a', 'b', 'c']);
  });

  it('a write with no callbacks passes done = null', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    q.reply('250 a\r\n');
    assert.equal(rec.writes[0]!.done, null);
  });

  it('a slot filled with null sends nothing; its callback runs without waiting for a write', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    const s = q.reserve();
    let ran = false;
    q.fill(s, null, () => (ran = true));
    assert.equal(rec.writes.length, 0);
    assert.ok(ran);
  });

  it('Buffers and strings mix in one write, byte for byte', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    const held = q.reserve();
    q.expect(relay);
    q.backendReply(reply('250 \xe9t\xe9\r\n'));
    q.fill(held, '250 first\r\n');
    assert.equal(rec.writes.length, 1);
    const [first, second] = rec.writes[0]!.chunks;
    assert.equal(typeof first, 'string');
    assert.ok(Buffer.isBuffer(second));
    assert.deepEqual(second, Buffer.from('250 \xe9t\xe9\r\n'));
  });

  it('many pipelined commands answered one by one: exactly one write per reply, never out of order', () => {
    const rec = recorder();
    const q = new ReplyQueue(rec.sink);
    const n = 200;
    // Every third command is refused by Postern, the rest go to the backend.
    const expected: string[] = [];
    let backendNo = 0;
    const backendTexts: string[] = [];
    for (let i = 0; i < n; i++) {
      if (i % 3 === 2) {
        q.reply(`550 own ${i}\r\n`);
        expected.push(`550 own ${i}\r\n`);
      } else {
        q.expect(relay);
        const t = `250 backend ${backendNo++}\r\n`;
        backendTexts.push(t);
        expected.push(t);
      }
    }
    assert.equal(q.owed, n);
    for (const t of backendTexts) q.backendReply(reply(t));
    assert.equal(rec.text(), expected.join(''));
    // One write per backend reply: the own replies ride with the reply before them.
    assert.equal(rec.writes.length, backendTexts.length);
  });
});
