// smtp/queue-id.ts: the backend's id for an accepted message, read from its reply.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { queueId } from '../../src/smtp/queue-id.js';
import { ReplyParser } from '../../src/smtp/reply.js';

/** The id found in `text`, parsed as the backend's reply bytes. */
const idOf = (text: string): string | null => {
  const [r] = new ReplyParser().push(Buffer.from(text));
  assert.ok(r, 'one whole reply');
  return queueId(r);
};

describe('queueId', () => {
  it('Postfix: `queued as ID`, short and long queue ids', () => {
    assert.equal(idOf('250 2.0.0 Ok: queued as 4XyZ1234\r\n'), '4XyZ1234');
    assert.equal(idOf('250 2.0.0 Ok: queued as 4ZbW0V1Cf0z9vBq\r\n'), '4ZbW0V1Cf0z9vBq', 'enable_long_queue_ids');
    assert.equal(idOf('250 Ok: queued as 8A3F2C1D0E (more text)\r\n'), '8A3F2C1D0E');
  });

  it('Exim: `id=ID`, old and new id formats', () => {
    assert.equal(idOf('250 OK id=1rAbCd-000Xyz-Ab\r\n'), '1rAbCd-000Xyz-Ab');
    assert.equal(idOf('250 OK id=1tNtpa-00000000AbC-0Xyz\r\n'), '1tNtpa-00000000AbC-0Xyz');
  });

  it('servers that say neither: null', () => {
    assert.equal(idOf('250 2.0.0 Ok\r\n'), null);
    assert.equal(idOf('250 2.0.0 Message accepted for delivery\r\n'), null);
    assert.equal(idOf('250\r\n'), null, 'a reply with no text');
    assert.equal(idOf('250 Ok: queued as\r\n'), null, 'the words without an id');
  });

  it('`id=` only as a word of its own (not pid=, messageid=)', () => {
    assert.equal(idOf('250 OK pid=4242\r\n'), null);
    assert.equal(idOf('250 OK messageid=abc\r\n'), null);
    assert.equal(idOf('250 OK (id=abc)\r\n'), 'abc');
  });

  it('multi-line replies: the first line that names an id, wherever it is', () => {
    assert.equal(idOf('250-2.0.0 Ok\r\n250-queued as 7B2A\r\n250 have a nice day\r\n'), '7B2A');
    assert.equal(idOf('250-first id=aaa-1\r\n250 queued as BBB\r\n'), 'aaa-1');
    assert.equal(idOf('250-a\r\n250-b\r\n250 c\r\n'), null);
  });

  it('on one line Postfix’s form wins over an id= in the same text', () => {
    assert.equal(idOf('250 id=xyz queued as ABC\r\n'), 'ABC');
  });
});
