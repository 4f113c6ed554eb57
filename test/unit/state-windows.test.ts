// LocalWindowCounter: sliding-window event counts held in this process, time passed in.
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { LocalWindowCounter } from '../../src/state/windows.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('LocalWindowCounter', () => {
  it('hit() records and counts the events inside the window, this one included', async () => {
    const c = clock();
    const w = new LocalWindowCounter(c.now);
    assert.equal(await w.hit('ip:192.0.2.1', 1000), 1);
    c.advance(400);
    assert.equal(await w.hit('ip:192.0.2.1', 1000), 2);
    c.advance(400);
    assert.equal(await w.hit('ip:192.0.2.1', 1000), 3);
    c.advance(201); // the first is now 1001 ms old
    assert.equal(await w.count('ip:192.0.2.1', 1000), 2);
    assert.equal(await w.hit('ip:192.0.2.1', 1000), 3);
    w.close();
  });

  it('count() records nothing; keys are counted apart; an unknown key is 0', async () => {
    const c = clock();
    const w = new LocalWindowCounter(c.now);
    await w.hit('user:alice', 60_000);
    for (let i = 0; i < 3; i++) assert.equal(await w.count('user:alice', 60_000), 1);
    assert.equal(await w.count('user:bob', 60_000), 0);
    assert.equal(await w.hit('user:bob', 60_000), 1);
    assert.equal(await w.count('user:alice', 60_000), 1);
    w.close();
  });

  it('one key may be read with different windows', async () => {
    const c = clock();
    const w = new LocalWindowCounter(c.now);
    for (let i = 0; i < 5; i++) {
      await w.hit('k', 10_000);
      c.advance(1000);
    }
    assert.equal(await w.count('k', 10_000), 5);
    assert.equal(await w.count('k', 2500), 2);
    w.close();
  });

  it('an event exactly window old is out (the window is (now - window, now])', async () => {
    const c = clock();
    const w = new LocalWindowCounter(c.now);
    await w.hit('k', 1000);
    c.advance(1000);
    assert.equal(await w.count('k', 1000), 0);
    w.close();
  });

  it('holds at most maxKeys keys: past it the oldest key goes (a day-long pass cache under rotating addresses stays bounded)', async () => {
    const w = new LocalWindowCounter(Date.now, 3);
    try {
      for (const k of ['a', 'b', 'c']) await w.hit(k, 60_000);
      await w.hit('a', 60_000); // a known key: no eviction
      assert.equal(w.keys, 3);
      await w.hit('d', 60_000);
      assert.equal(w.keys, 3);
      assert.equal(await w.count('a', 60_000), 0, 'the oldest key went');
      assert.equal(await w.count('b', 60_000), 1);
      assert.equal(await w.count('d', 60_000), 1);
    } finally {
      w.close();
    }
  });

  it('keeps at most 10000 events per key: a flood is "over the limit", not stored whole', async () => {
    const c = clock();
    const w = new LocalWindowCounter(c.now);
    let n = 0;
    for (let i = 0; i < 10_050; i++) n = await w.hit('flood', 60_000);
    assert.equal(n, 10_000);
    w.close();
  });

  it('prunes each key by its own window: one long-lived key keeps no short one alive', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      const c = clock();
      const w = new LocalWindowCounter(c.now);
      await w.hit('known:192.0.2.1:alice', 14 * 24 * 3600_000);
      for (let i = 0; i < 100; i++) await w.hit(`ip:198.51.100.${i}`, 600_000);
      assert.equal(w.keys, 101);
      c.advance(600_001);
      mock.timers.tick(60_000);
      assert.equal(w.keys, 1, 'the short keys went once their window passed');
      assert.equal(await w.count('known:192.0.2.1:alice', 14 * 24 * 3600_000), 1);
      w.close();
    } finally {
      mock.timers.reset();
    }
  });
});
