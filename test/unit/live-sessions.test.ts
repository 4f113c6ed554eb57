// server/live-sessions.ts: the running sessions as a list whose removed entries hold nothing
// (issue 26: a long-lived Set kept ended sessions reachable from the old generation).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LiveSessions } from '../../src/server/live-sessions.js';

describe('LiveSessions', () => {
  it('counts and lists what was added and not removed, newest first', () => {
    const list = new LiveSessions<string>();
    const a = list.add('a');
    list.add('b');
    const c = list.add('c');
    assert.equal(list.size, 3);
    assert.deepEqual([...list], ['c', 'b', 'a']);
    a.remove();
    assert.deepEqual([...list], ['c', 'b']);
    c.remove();
    assert.deepEqual([...list], ['b']);
    assert.equal(list.size, 1);
  });

  it('removing twice changes nothing the second time', () => {
    const list = new LiveSessions<number>();
    const one = list.add(1);
    list.add(2);
    one.remove();
    one.remove();
    assert.equal(list.size, 1);
    assert.deepEqual([...list], [2]);
  });

  it('an entry lets go of its session and its neighbours once removed', () => {
    const list = new LiveSessions<object>();
    list.add({ n: 1 });
    const mid = list.add({ n: 2 });
    list.add({ n: 3 });
    mid.remove();
    const e = mid as unknown as { item: unknown; prev: unknown; next: unknown };
    assert.equal(e.item, null);
    assert.equal(e.prev, null);
    assert.equal(e.next, null);
    assert.deepEqual([...list].map((o) => (o as { n: number }).n), [3, 1]);
  });

  it('iterates over the sessions of the moment: removals while iterating (a stop ending them) skip nothing', () => {
    const list = new LiveSessions<number>();
    const entries = [1, 2, 3, 4].map((n) => list.add(n));
    const seen: number[] = [];
    for (const n of list) {
      seen.push(n);
      entries[n - 1]!.remove();
      if (n === 4) entries[0]!.remove();
    }
    assert.deepEqual(seen, [4, 3, 2, 1]);
    assert.equal(list.size, 0);
    assert.deepEqual([...list], []);
  });
});
