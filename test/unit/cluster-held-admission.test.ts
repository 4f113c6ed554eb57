// The cluster primary's admission for its workers, without forking: a worker is an id.
// Refusals wait a grace period for a release on its way; a dead worker's connections are
// released; an asynchronous admission (Redis) keeps the same rules.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admission, type AdmissionControl, type Refusal } from '../../src/server/admission.js';
import { HeldAdmission, LEASE_MAX, type Lease } from '../../src/server/cluster/held-admission.js';
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

describe('HeldAdmission leases (issue 26: no IPC round trip per connection)', () => {
  interface Leased {
    worker: number;
    id: number;
    refusal: Refusal | null;
    lease: Lease | null;
  }
  /** Two workers, their leases kept as a worker keeps them; recalls answered as a worker answers them. */
  function leasing(limits: LimitsConfig, opts: { answerRecalls?: boolean } = {}) {
    const answers: Leased[] = [];
    const admission = new Admission(limits);
    const leases = new Map<number, Map<string, { n: number; seq: number }>>([
      [1, new Map()],
      [2, new Map()],
    ]);
    const recalls: [number, string][] = [];
    const giveBack = (worker: number, ip: string) => {
      const l = leases.get(worker)!.get(ip);
      leases.get(worker)!.delete(ip);
      held.unlease(worker, ip, l?.n ?? 0, l?.seq ?? 0);
    };
    const held: HeldAdmission = new HeldAdmission(
      admission,
      (worker, id, refusal, lease) => {
        answers.push({ worker, id, refusal, lease });
        if (lease) {
          const mine = leases.get(worker)!;
          const l = mine.get(lease.ip);
          if (l) {
            l.n += lease.n;
            l.seq = lease.seq;
          } else mine.set(lease.ip, { n: lease.n, seq: lease.seq });
        }
      },
      {
        graceMs: 200,
        lease: {
          max: LEASE_MAX,
          workers: () => 2,
          recall: (worker, ip) => {
            recalls.push([worker, ip]);
            // A worker answers after the primary's turn (IPC).
            if (opts.answerRecalls !== false) setImmediate(() => giveBack(worker, ip));
          },
        },
      },
    );
    closers.push(() => held.close(), () => admission.close());
    let id = 0;
    /** A connection on `worker`: spent from its lease when it has one (admitted, no call), else asked. */
    const connect = (worker: number, ip: string): 'lease' | number => {
      const l = leases.get(worker)!.get(ip);
      if (l && l.n > 0) {
        l.n--;
        if (l.n === 0) giveBack(worker, ip);
        return 'lease';
      }
      held.admit(worker, ++id, ip);
      return id;
    };
    return { held, admission, answers, leases, recalls, connect, giveBack, answerOf: (n: number) => answers.find((a) => a.id === n) };
  }

  it('an admitted connection brings a lease of half a worker\'s share of the room, spent without asking', () => {
    const { answers, connect, leases } = leasing(limitsWith({ perIp: 1000, rate: 100_000 }));
    assert.equal(connect(1, IP), 1);
    assert.equal(answers[0]!.refusal, null);
    assert.deepEqual({ n: answers[0]!.lease!.n, ip: answers[0]!.lease!.ip }, { n: LEASE_MAX, ip: IP });
    // The next LEASE_MAX connections ask nothing of the primary.
    for (let i = 0; i < LEASE_MAX; i++) assert.equal(connect(1, IP), 'lease');
    assert.equal(leases.get(1)!.has(IP), false, 'spent, and said so');
    assert.equal(typeof connect(1, IP), 'number', 'then it asks again');
    // 200 connections: one call in LEASE_MAX + 1.
    let calls = 0;
    for (let i = 0; i < 200; i++) if (connect(1, IP) !== 'lease') calls++;
    assert.ok(calls <= Math.ceil(200 / (LEASE_MAX + 1)) + 1, `${calls} calls for 200 connections`);
  });

  it('leases shrink near the limit and none is given for its last places', () => {
    const { answers, connect } = leasing(limitsWith({ perIp: 10, rate: 100_000 }));
    const asks: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = connect(1, IP);
      if (r !== 'lease') asks.push(r);
    }
    // Each asked connection leaves room R; the lease is floor(R / (2 workers x 2)):
    // 1 held, 9 left -> 2; 4 held, 6 left -> 1; 6 held, 4 left -> 1; 8 held, 2 left -> none.
    assert.deepEqual(asks.map((id) => answers.find((a) => a.id === id)!.lease?.n ?? 0), [2, 1, 1, 0]);
    assert.ok(answers.every((a) => a.refusal === null));
  });

  it('per-IP connections hold exactly across two workers: a refusal recalls the other worker\'s unspent lease and admits with it', async () => {
    const perIp = 10;
    const { answers, connect, recalls, held, answerOf } = leasing(limitsWith({ perIp, rate: 100_000 }));
    // Worker 1: one connection and a lease of 2, unspent.
    connect(1, IP);
    assert.equal(answers[0]!.lease!.n, 2);
    // Worker 2 opens connections until refused: every one of the 10 places is used by a real connection.
    let admitted = 1;
    for (let i = 0; i < perIp + 2; i++) {
      const r = connect(2, IP);
      if (r === 'lease') admitted++;
      else {
        await sleep(5);
        const a = answerOf(r);
        if (a?.refusal === null) admitted++;
        else if (a) break;
        else {
          // Waiting: on a recall (answered once the lease comes back), or the grace of a per-IP refusal.
          await sleep(250);
          const late = answerOf(r);
          assert.ok(late, 'answered once the recalled lease came back');
          if (late.refusal === null) admitted++;
          else break;
        }
      }
    }
    assert.equal(admitted, perIp, 'exactly the limit, no fewer (leases recalled) and no more');
    assert.ok(recalls.some(([w]) => w === 1), 'worker 1 was asked for its lease');
    assert.equal(held.waiting, 0);
    assert.equal(held.heldBy(1).get(IP), 1, "worker 1 holds its one connection, its lease given back");
  });

  it('a refusal waits for a recall only as long as the grace, and a lease given back frees its rate slot', async () => {
    const { connect, answerOf, admission, held } = leasing(limitsWith({ perIp: 1000, rate: 9 }), { answerRecalls: false });
    connect(1, IP); // admitted + lease of floor(8 / 4) = 2
    const second = connect(2, IP); // 1 + 2 + 1 = 4 of 9: lease of floor(5 / 4) = 1
    assert.equal(answerOf(second as number)!.lease!.n, 1);
    // 1 spent from its lease, then 4 asked (no more leases: too little room): 5 + 4 = 9 of 9.
    for (let i = 0; i < 5; i++) connect(2, IP);
    const refusedId = connect(2, IP) as number;
    await sleep(20);
    assert.equal(answerOf(refusedId), undefined, 'rate refusal held while worker 1 is recalled');
    await sleep(250);
    assert.equal(answerOf(refusedId)?.refusal?.limit, 'per_ip_rate', 'no answer to the recall: refused after the grace');
    // Worker 1 gives its 2 unspent admissions back: 2 rate slots free.
    assert.equal(admission.headroom(IP), 0);
    held.unlease(1, IP, 2, 1);
    assert.equal(admission.headroom(IP), 2);
  });

  it('a dead worker\'s lease goes with its connections', () => {
    const { connect, held, admission } = leasing(limitsWith({ perIp: 1000, rate: 100_000 }));
    connect(1, IP);
    assert.equal(held.heldBy(1).get(IP), 1 + LEASE_MAX);
    assert.equal(held.leasedKeys, 1);
    held.forget(1);
    assert.equal(admission.total, 0);
    assert.equal(held.leasedKeys, 0);
  });

  it('an asynchronous admission (Redis) leases nothing', async () => {
    const answers: Leased[] = [];
    const slow = new SlowAdmission(limitsWith({ perIp: 1000 }), 1);
    const held = new HeldAdmission(slow, (worker, id, refusal, lease) => answers.push({ worker, id, refusal, lease }), {
      lease: { max: LEASE_MAX, workers: () => 2, recall: () => assert.fail('no recall') },
    });
    closers.push(() => held.close(), () => slow.close());
    held.admit(1, 1, IP);
    await sleep(20);
    assert.deepEqual(answers.map((a) => [a.refusal, a.lease]), [[null, null]]);
  });
});
