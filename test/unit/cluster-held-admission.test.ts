// The cluster primary's admission for its workers, without forking: a worker is an id.
// Refusals wait a grace period for a release on its way; a dead worker's connections are
// released; an asynchronous admission (Redis) keeps the same rules.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admission, type AdmissionControl, type Refusal } from '../../src/server/admission.js';
import { HeldAdmission } from '../../src/server/cluster/held-admission.js';
import type { LimitsConfig } from '../../src/config/types.js';
import { limitsWith } from '../helpers/limits.js';

interface Answer {
  worker: number;
  id: number;
  refusal: Refusal | null;
  at: number;
}

const closers: (() => void)[] = [];
after(() => closers.forEach((c) => c()));

function setup(admission: AdmissionControl, opts: { graceMs?: number; maxWaitingPerKey?: number } = {}) {
  const answers: Answer[] = [];
  const held = new HeldAdmission(admission, (worker, id, refusal) => answers.push({ worker, id, refusal, at: Date.now() }), opts);
  closers.push(() => held.close(), () => admission.close());
  const answerOf = (id: number) => answers.find((a) => a.id === id);
  return { held, answers, answerOf };
}

/** The local Admission, deciding after `delayMs` as a remote store would. */
class SlowAdmission implements AdmissionControl {
  readonly inner: Admission;
  constructor(limits: LimitsConfig, private readonly delayMs: number) {
    this.inner = new Admission(limits);
  }
  admit(ip: string): Promise<Refusal | null> {
    return sleep(this.delayMs).then(() => this.inner.admit(ip));
  }
  release(ip: string): void {
    this.inner.release(ip);
  }
  force(ip: string): void {
    this.inner.force(ip);
  }
  update(l: LimitsConfig): void {
    this.inner.update(l);
  }
  close(): void {
    this.inner.close();
  }
}

const IP = '192.0.2.10';

describe('HeldAdmission', () => {
  it('answers an admission at once and counts it for its worker', () => {
    const { held, answers } = setup(new Admission(limitsWith({ perIp: 2 })));
    held.admit(1, 1, IP);
    held.admit(2, 2, IP);
    assert.deepEqual(answers.map((a) => [a.worker, a.id, a.refusal]), [[1, 1, null], [2, 2, null]]);
    assert.deepEqual([...held.heldBy(1)], [[IP, 1]]);
    assert.deepEqual([...held.heldBy(2)], [[IP, 1]]);
  });

  it('holds a per-IP refusal until a release from another worker, then admits it', async () => {
    const { held, answers, answerOf } = setup(new Admission(limitsWith({ perIp: 1 })), { graceMs: 2000 });
    held.admit(1, 1, IP);
    held.admit(2, 2, IP);
    assert.equal(answers.length, 1, 'the refusal is held back');
    assert.equal(held.waiting, 1);
    await sleep(20);
    held.release(1, IP);
    assert.equal(answerOf(2)?.refusal, null, 'admitted as soon as the release came');
    assert.equal(held.waiting, 0);
    assert.deepEqual([...held.heldBy(2)], [[IP, 1]]);
    assert.equal(held.heldBy(1).size, 0);
  });

  it('answers a held refusal when the grace ends with no release', async () => {
    const { held, answerOf } = setup(new Admission(limitsWith({ perIp: 1 })), { graceMs: 60 });
    const t0 = Date.now();
    held.admit(1, 1, IP);
    held.admit(1, 2, IP);
    assert.equal(answerOf(2), undefined);
    await sleep(150);
    const a = answerOf(2);
    assert.equal(a?.refusal?.limit, 'per_ip_connections');
    assert.ok(a!.at - t0 >= 55, `answered after the grace (${a!.at - t0} ms)`);
  });

  it('answers other refusals at once (rate, total)', () => {
    const { held, answers } = setup(new Admission(limitsWith({ max: 2, rate: 1 })), { graceMs: 5000 });
    held.admit(1, 1, IP);
    held.admit(1, 2, IP);
    assert.equal(answers[1]?.refusal?.limit, 'per_ip_rate');
    held.admit(1, 3, '192.0.2.11');
    held.admit(1, 4, '192.0.2.12');
    assert.equal(answers[3]?.refusal?.limit, 'max_connections');
    assert.equal(held.waiting, 0);
  });

  it('lets the oldest waiting admits in first, as many as releases make room for', () => {
    const { held, answers } = setup(new Admission(limitsWith({ perIp: 2 })), { graceMs: 5000 });
    held.admit(1, 1, IP);
    held.admit(1, 2, IP);
    for (let id = 3; id <= 6; id++) held.admit(2, id, IP);
    assert.equal(held.waiting, 4);
    held.release(1, IP);
    assert.deepEqual(answers.slice(2).map((a) => a.id), [3]);
    held.release(1, IP);
    assert.deepEqual(answers.slice(2).map((a) => a.id), [3, 4]);
    assert.equal(held.waiting, 2);
    held.close();
  });

  it('answers at once beyond maxWaitingPerKey', () => {
    const { held, answers } = setup(new Admission(limitsWith({ perIp: 1 })), { graceMs: 5000, maxWaitingPerKey: 3 });
    held.admit(1, 1, IP);
    for (let id = 2; id <= 6; id++) held.admit(1, id, IP);
    assert.equal(held.waiting, 3);
    assert.deepEqual(answers.map((a) => [a.id, a.refusal?.limit ?? null]), [[1, null], [5, 'per_ip_connections'], [6, 'per_ip_connections']]);
    held.close();
  });

  it('a dead worker gives its connections back, which admits those waiting; its own waiters are dropped', async () => {
    const admission = new Admission(limitsWith({ perIp: 2 }));
    const { held, answers, answerOf } = setup(admission, { graceMs: 100 });
    held.admit(1, 1, IP);
    held.admit(1, 2, IP);
    held.force(1, '192.0.2.99');
    held.admit(1, 3, IP); // worker 1 waits too
    held.admit(2, 4, IP);
    assert.equal(held.waiting, 2);
    held.forget(1);
    assert.equal(answerOf(3), undefined, 'the dead worker is never answered');
    assert.equal(answerOf(4)?.refusal, null, 'the live one got the room');
    assert.deepEqual([...admission.held()], [[IP, 1]], 'only worker 2 holds a connection now');
    assert.equal(admission.total, 1);
    await sleep(150);
    assert.equal(answers.length, 3, 'no late answer for the dead worker');
  });

  it('with an asynchronous admission: the same rules, and a decision for a dead worker is given back', async () => {
    const slow = new SlowAdmission(limitsWith({ perIp: 2 }), 15);
    const { held, answerOf } = setup(slow, { graceMs: 1000 });
    held.admit(1, 1, IP);
    held.admit(1, 2, IP);
    await sleep(40);
    assert.equal(answerOf(2)?.refusal, null);
    held.admit(2, 3, IP);
    held.admit(2, 4, IP);
    held.admit(2, 5, IP);
    await sleep(40);
    assert.equal(answerOf(3), undefined, 'held');
    held.release(1, IP);
    held.release(1, IP); // while the first retry's decision is on its way: it goes on to the next waiter
    await sleep(80);
    assert.equal(answerOf(3)?.refusal, null);
    assert.equal(answerOf(4)?.refusal, null);
    assert.equal(answerOf(5), undefined, 'still waiting: no room for a third');
    assert.equal(slow.inner.total, 2);
    held.admit(3, 6, '192.0.2.50');
    held.forget(3); // dies before the decision arrives
    await sleep(40);
    assert.equal(answerOf(6), undefined);
    assert.equal(slow.inner.total, 2, 'the admission decided for the dead worker was released');
    held.close();
  });

  it('with an asynchronous admission, a grace that ends while a decision is on its way takes that decision', async () => {
    const slow = new SlowAdmission(limitsWith({ perIp: 1 }), 50);
    const { held, answerOf } = setup(slow, { graceMs: 80 });
    held.admit(1, 1, IP);
    await sleep(70);
    held.admit(2, 2, IP); // refused at ~120 ms, waits until ~200 ms
    await sleep(120); // ~190 ms: release; its decision arrives after the grace ended
    held.force(1, IP); // keeps the address full so the retry is refused too
    held.release(1, IP);
    await sleep(120);
    const a = answerOf(2);
    assert.equal(a?.refusal?.limit, 'per_ip_connections', 'answered once, with the late decision');
    assert.equal(held.waiting, 0);
  });
});
