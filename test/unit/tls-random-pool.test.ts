// The pool the ticket-key callback draws its IVs from: fresh bytes every time, across refills,
// and bytes already handed out never change.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RANDOM_POOL_BYTES, RandomPool } from '../../src/tls/random-pool.js';

describe('RandomPool', () => {
  it('hands out 16-byte draws that never repeat, across many refills', () => {
    // 64-byte pools: a refill every 4 draws, 250 refills.
    const pool = new RandomPool(64);
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const b = pool.take(16);
      assert.equal(b.length, 16);
      seen.add(b.toString('hex'));
    }
    assert.equal(seen.size, 1000);
  });

  it('never changes bytes it handed out (a spent pool is replaced, not refilled)', () => {
    const pool = new RandomPool(32);
    const first = pool.take(16);
    const copy = Buffer.from(first);
    for (let i = 0; i < 100; i++) pool.take(16);
    assert.ok(first.equals(copy));
  });

  it('draws of different sizes do not overlap, and a draw that does not fit starts a new pool', () => {
    const pool = new RandomPool(40);
    const a = pool.take(16);
    const b = pool.take(16);
    const c = pool.take(16); // 8 bytes left: a new pool
    assert.equal(a.buffer, b.buffer);
    assert.equal(a.byteOffset + 16, b.byteOffset);
    assert.notEqual(c.buffer, a.buffer);
    assert.equal(pool.take(1).byteOffset, c.byteOffset + 16);
  });

  it('is not all zeros (the fill is random, not the allocation)', () => {
    const pool = new RandomPool();
    assert.equal(pool.size, RANDOM_POOL_BYTES);
    let nonZero = 0;
    for (let i = 0; i < 64; i++) if (pool.take(16).some((x) => x !== 0)) nonZero++;
    assert.equal(nonZero, 64);
  });

  it('refuses sizes and draws it cannot serve', () => {
    assert.throws(() => new RandomPool(0), RangeError);
    assert.throws(() => new RandomPool(1.5), RangeError);
    const pool = new RandomPool(16);
    assert.throws(() => pool.take(0), RangeError);
    assert.throws(() => pool.take(17), RangeError);
    assert.throws(() => pool.take(Number.NaN), RangeError);
    assert.equal(pool.take(16).length, 16);
  });
});
