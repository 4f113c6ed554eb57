// ReplyDeadlines: one timer for the oldest reply the backend owes, the command timeout or the
// final-reply one (RFC 5321 §4.5.3.2), started again at each reply (session/reply-deadlines.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplyDeadlines } from '../../src/session/reply-deadlines.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('ReplyDeadlines', () => {
  it('a reply owed past the command timeout expires, naming what was late', async () => {
    const late: string[] = [];
    const d = new ReplyDeadlines(() => ({ command: 20, final_reply: 1000 }), (why) => late.push(why));
    d.owe(false);
    await sleep(60);
    assert.deepEqual(late, ['no reply to a relayed command within 20 ms']);
  });

  it('the end of a message gets the final-reply timeout; each reply starts the next one anew', async () => {
    const late: string[] = [];
    const d = new ReplyDeadlines(() => ({ command: 40, final_reply: 400 }), (why) => late.push(why));
    d.owe(true);
    d.owe(false);
    await sleep(80);
    assert.deepEqual(late, [], 'the oldest owed is the final reply: 400 ms');
    d.paid();
    await sleep(20);
    assert.deepEqual(late, [], 'the next one has its own 40 ms from now');
    await sleep(60);
    assert.deepEqual(late, ['no reply to a relayed command within 40 ms']);
  });

  it('nothing expires once every reply came, after clear(), or when the binding changed', async () => {
    const late: string[] = [];
    const d = new ReplyDeadlines(() => ({ command: 20, final_reply: 20 }), (why) => late.push(why));
    d.owe(false);
    d.paid();
    d.owe(false);
    d.owe(false);
    d.clear();
    d.owe(false);
    d.owe(false);
    d.paid(false);
    await sleep(60);
    assert.deepEqual(late, []);
  });
});
