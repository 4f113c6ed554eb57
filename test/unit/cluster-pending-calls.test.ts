// server/cluster/pending-calls.ts: requests to another process answered by id, each settled once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PendingCalls } from '../../src/server/cluster/pending-calls.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PendingCalls', () => {
  it('settles each call by its own id, once; a late or unknown answer is ignored', () => {
    const calls = new PendingCalls<string>('none');
    const got: string[] = [];
    const a = calls.open((v) => got.push(`a:${v}`));
    const b = calls.open((v) => got.push(`b:${v}`));
    assert.notEqual(a, b);
    calls.settle(b, 'two');
    calls.settle(a, 'one');
    calls.settle(a, 'again');
    calls.settle(999, 'stray');
    assert.deepEqual(got, ['b:two', 'a:one']);
  });

  it('a call unanswered past its deadline gets the missing value; the answer after it is ignored', async () => {
    const calls = new PendingCalls<number>(-1, 20);
    const got: number[] = [];
    const id = calls.open((v) => got.push(v));
    await sleep(60);
    calls.settle(id, 7);
    assert.deepEqual(got, [-1]);
  });

  it('settleAll answers every open call with the missing value; drop answers none', async () => {
    const calls = new PendingCalls<number>(0, 30);
    const got: number[] = [];
    calls.open((v) => got.push(v));
    calls.open((v) => got.push(v));
    calls.settleAll();
    assert.deepEqual(got, [0, 0]);
    const id = calls.open((v) => got.push(v));
    calls.drop();
    calls.settle(id, 5);
    await sleep(60);
    assert.deepEqual(got, [0, 0], 'a dropped call is never settled, not even by its deadline');
  });
});
