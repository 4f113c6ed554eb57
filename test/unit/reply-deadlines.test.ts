// ReplyDeadlines: one timer for the oldest reply the backend owes, the command timeout or the
// final-reply one (RFC 5321 §4.5.3.2), started again at each reply (session/reply-deadlines.ts).
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
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

  it('a deadline moved past the armed timer: not late at the timer, late at its own time', async () => {
    const late: string[] = [];
    const d = new ReplyDeadlines(() => ({ command: 60, final_reply: 1000 }), (why) => late.push(why));
    d.owe(false);
    d.owe(false);
    await sleep(40);
    d.paid(); // the second reply's 60 ms start now; the timer still fires at 60 ms from the first
    await sleep(40);
    assert.deepEqual(late, [], '80 ms after the first owe, 40 ms into the second reply\'s 60');
    await sleep(60);
    assert.deepEqual(late, ['no reply to a relayed command within 60 ms']);
  });

  it('one timer for a session\'s replies, not one per reply (issue 26)', async () => {
    let made = 0;
    const hook = createHook({
      init(_id, type) {
        if (type === 'Timeout') made++;
      },
    });
    const late: string[] = [];
    const d = new ReplyDeadlines(() => ({ command: 300_000, final_reply: 600_000 }), (why) => late.push(why));
    hook.enable();
    try {
      for (let i = 0; i < 20; i++) {
        d.owe(i % 5 === 4);
        d.paid();
      }
      d.clear();
    } finally {
      hook.disable();
    }
    assert.equal(made, 1, `${made} timers for 20 replies`);
    assert.deepEqual(late, []);
  });
});
