// withGetters: callbacks plus read-only views, built so that V8 keeps the objects fast (one
// shared prototype per set of getter names) instead of one dictionary per session.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withGetters } from '../../src/session/with-getters.js';

describe('withGetters', () => {
  it('reads each view when asked, keeps the methods, and shares one prototype per set of names', () => {
    const state = { n: 1, closed: false };
    const make = () => withGetters({ bump: () => void state.n++, label: 'x' }, { n: () => state.n, closed: () => state.closed });
    const a = make();
    const b = make();
    assert.equal(a.n, 1);
    a.bump();
    state.closed = true;
    assert.equal(b.n, 2, 'a view, not a copy');
    assert.equal(b.closed, true);
    assert.equal(a.label, 'x');
    assert.equal(Object.getPrototypeOf(a), Object.getPrototypeOf(b), 'one prototype for both');
    assert.notEqual(Object.getPrototypeOf(a), Object.getPrototypeOf(withGetters({}, { other: () => 0 })));
    assert.throws(() => {
      (a as { n: number }).n = 5;
    }, TypeError, 'read-only');
  });
});
