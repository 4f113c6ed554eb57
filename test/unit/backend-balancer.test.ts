import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { order, type Balanced } from '../../src/backend/balancer.js';

const servers = (weights: number[]): Balanced[] => weights.map((w, i) => ({ key: `10.0.0.${i + 1}:25`, weight: w, active: 0, current: 0 }));

describe('balancer', () => {
  it('round-robin is smooth and weighted (nginx): exact shares, no bursts', () => {
    const s = servers([1, 2, 3]);
    const picks = Array.from({ length: 600 }, () => order('round-robin', s, 'x')[0]!.key);
    const count = (k: string) => picks.filter((p) => p === k).length;
    assert.deepEqual([count(s[0]!.key), count(s[1]!.key), count(s[2]!.key)], [100, 200, 300]);
    // Smooth: the heaviest server never gets more than ceil(total/others) picks in a row.
    let run = 0;
    let worst = 0;
    for (let i = 1; i < picks.length; i++) worst = Math.max(worst, (run = picks[i] === picks[i - 1] ? run + 1 : 0));
    assert.ok(worst <= 1, `longest repeat ${worst + 1}`);
  });

  it('least-connections weighs active sessions by weight, then keeps order', () => {
    const s = servers([1, 2]);
    s[0]!.active = 1;
    s[1]!.active = 1;
    assert.equal(order('least-connections', s, 'x')[0], s[1], '1/2 < 1/1');
    s[1]!.active = 3;
    assert.equal(order('least-connections', s, 'x')[0], s[0]);
  });

  it('every strategy returns every server once, pick first, the rest for failover', () => {
    for (const strategy of ['round-robin', 'least-connections', 'client-hash'] as const) {
      const s = servers([1, 1, 1, 1]);
      const o = order(strategy, s, '192.0.2.7');
      assert.equal(new Set(o).size, 4);
    }
  });

  it('client-hash keeps each client on its server and moves only about 1/N when one is removed', () => {
    const four = servers([1, 1, 1, 1]);
    const clients = Array.from({ length: 4000 }, (_, i) => `198.51.${i >> 8}.${i & 255}`);
    const before = new Map(clients.map((c) => [c, order('client-hash', four, c)[0]!.key]));
    for (const c of clients.slice(0, 100)) assert.equal(order('client-hash', four, c)[0]!.key, before.get(c), 'stable');
    const perServer = new Map<string, number>();
    for (const k of before.values()) perServer.set(k, (perServer.get(k) ?? 0) + 1);
    for (const n of perServer.values()) assert.ok(Math.abs(n - 1000) < 150, `share ${n}`);
    const three = four.slice(0, 3);
    let moved = 0;
    for (const c of clients) {
      const now = order('client-hash', three, c)[0]!.key;
      if (before.get(c) !== now) {
        moved++;
        assert.equal(before.get(c), four[3]!.key, 'only clients of the removed server move');
      }
    }
    assert.ok(Math.abs(moved - 1000) < 150, `moved ${moved} of 4000`);
  });

  it('client-hash follows weights', () => {
    const s = servers([1, 3]);
    let heavy = 0;
    for (let i = 0; i < 4000; i++) if (order('client-hash', s, `c${i}`)[0] === s[1]) heavy++;
    assert.ok(Math.abs(heavy - 3000) < 200, `heavy got ${heavy}`);
  });
});
