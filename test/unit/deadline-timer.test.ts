// net/deadline-timer.ts: one Timeout behind a deadline that moves (issue 26).
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { describe, it } from 'node:test';
import { DeadlineTimer } from '../../src/net/deadline-timer.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Timeouts created while `fn` runs. */
function timeoutsMadeBy(fn: () => void): number {
  let n = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'Timeout') n++;
    },
  });
  hook.enable();
  try {
    fn();
  } finally {
    hook.disable();
  }
  return n;
}

describe('DeadlineTimer', () => {
  it('a deadline moved later is late at its own time, on the timer armed first', async () => {
    let late = 0;
    const owner = { name: 'owner' };
    let passed: unknown = null;
    const t = new DeadlineTimer((o: typeof owner) => {
      passed = o;
      late++;
    }, owner);
    const t0 = Date.now();
    const made = timeoutsMadeBy(() => {
      t.set(t0 + 30);
      for (let i = 1; i <= 10; i++) t.set(t0 + 30 + i * 10);
    });
    assert.equal(made, 1, 'later deadlines reuse the armed timer');
    await sleep(60);
    assert.equal(late, 0, 'the timer fired at 30 ms and was armed again for 130 ms');
    await sleep(120);
    assert.equal(late, 1);
    assert.equal(passed, owner, 'the callback gets its owner');
    assert.equal(t.at, 0, 'no deadline once late');
  });

  it('a deadline moved earlier re-arms at once', async () => {
    let late = 0;
    const t = new DeadlineTimer(() => late++, null);
    t.set(Date.now() + 10_000);
    t.set(Date.now() + 20);
    await sleep(60);
    assert.equal(late, 1);
  });

  it('stop(): the armed timer ends quietly; set() again starts a new deadline on it', async () => {
    let late = 0;
    const t = new DeadlineTimer(() => late++, null);
    t.set(Date.now() + 20);
    t.stop();
    await sleep(50);
    assert.equal(late, 0);
    t.set(Date.now() + 20);
    await sleep(50);
    assert.equal(late, 1);
  });

  it('clear(): nothing fires and nothing is left pending', async () => {
    let late = 0;
    // Only the timer made here is watched (the unit files share a process).
    const made = new Set<number>();
    const live = new Set<number>();
    let watching = true;
    const hook = createHook({
      init(id, type) {
        if (watching && type === 'Timeout') (made.add(id), live.add(id));
      },
      destroy(id) {
        if (made.has(id)) live.delete(id);
      },
    });
    hook.enable();
    const t = new DeadlineTimer(() => late++, null);
    t.set(Date.now() + 20);
    watching = false;
    assert.equal(made.size, 1, 'one timer armed');
    t.clear();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    hook.disable();
    await sleep(40);
    assert.equal(late, 0);
    assert.equal(live.size, 0, 'the timer is gone');
  });
});
