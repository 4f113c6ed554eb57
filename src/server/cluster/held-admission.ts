// Admission on behalf of several workers (the cluster primary's job), with no cluster or
// process in it: a worker is an id, an answer is a callback. Two things beyond a plain
// AdmissionControl:
//  - per worker, the connections it holds, released at once when the worker dies;
//  - a per-IP connection refusal held back up to `graceMs`, waiting for a release of that
//    address that may still be on its way. A worker releases a connection when its socket
//    has closed, which a client can see before that (it closes on the server's FIN), and a
//    release from one worker has no order with an admit from another: a client that quits
//    and reconnects at once would otherwise often be refused with per_ip.connections: 1.
//    Only refusals wait; admitted connections are answered at once.

import { clientKey } from '../../net/ip.js';
import { REFUSED, type AdmissionControl, type Refusal } from '../admission.js';

export type WorkerId = number;

export interface HeldAdmissionOptions {
  /** How long a per-IP connection refusal waits for a release (default RELEASE_GRACE_MS). */
  graceMs?: number;
  /** Refusals held back per address at most; beyond, they are answered at once. */
  maxWaitingPerKey?: number;
}

export const RELEASE_GRACE_MS = 100;
const MAX_WAITING_PER_KEY = 64;

interface Waiter {
  worker: WorkerId;
  id: number;
  ip: string;
  timer: NodeJS.Timeout;
  /** A decision for it is on its way (the admission may answer asynchronously). */
  deciding: boolean;
  /** Its grace ended while a decision was on its way: that decision is its answer. */
  expired: boolean;
}

type Answer = (worker: WorkerId, id: number, refusal: Refusal | null) => void;

export class HeldAdmission {
  /** Per worker, the connections it holds per IP. */
  readonly #held = new Map<WorkerId, Map<string, number>>();
  /** Workers gone: an admission decided for one after it died is given back. */
  readonly #gone = new Set<WorkerId>();
  /** Per client key, the refused admits waiting for a release (oldest first). */
  readonly #waiting = new Map<string, Waiter[]>();
  /** Keys whose queue is being retried now, and whether another release came meanwhile. */
  readonly #retrying = new Map<string, boolean>();
  readonly #graceMs: number;
  readonly #maxWaiting: number;

  constructor(
    private readonly admission: AdmissionControl,
    private readonly answer: Answer,
    opts: HeldAdmissionOptions = {},
  ) {
    this.#graceMs = opts.graceMs ?? RELEASE_GRACE_MS;
    this.#maxWaiting = opts.maxWaitingPerKey ?? MAX_WAITING_PER_KEY;
  }

  /** Decides for a worker's new connection; the answer comes through the callback (maybe at once). */
  admit(worker: WorkerId, id: number, ip: string): void {
    this.#decide(ip, (refusal) => {
      if (refusal?.limit === 'per_ip_connections' && this.#wait(worker, id, ip)) return;
      this.#settle(worker, id, ip, refusal);
    });
  }

  release(worker: WorkerId, ip: string): void {
    this.admission.release(ip);
    this.#hold(worker, ip, -1);
    this.#retry(clientKey(ip));
  }

  /** Counts a connection without checking limits (to restore a count that was released). */
  force(worker: WorkerId, ip: string): void {
    this.admission.force(ip);
    this.#hold(worker, ip, 1);
  }

  /** A worker is gone: its connections are gone too, and so are its waiting admits. */
  forget(worker: WorkerId): void {
    this.#gone.add(worker);
    const per = this.#held.get(worker);
    this.#held.delete(worker);
    if (per) for (const [ip, n] of per) for (let i = 0; i < n; i++) this.admission.release(ip);
    for (const [key, queue] of this.#waiting) {
      for (const waiter of queue.filter((x) => x.worker === worker)) {
        clearTimeout(waiter.timer);
        this.#unwait(key, waiter);
      }
    }
    // Its connections were released: room for those still waiting.
    if (per) for (const ip of per.keys()) this.#retry(clientKey(ip));
  }

  /** Connections a worker holds, by IP (for tests and status). */
  heldBy(worker: WorkerId): ReadonlyMap<string, number> {
    return this.#held.get(worker) ?? new Map();
  }

  /** Admits waiting for a release, over all addresses. */
  get waiting(): number {
    let n = 0;
    for (const q of this.#waiting.values()) n += q.length;
    return n;
  }

  close(): void {
    for (const queue of this.#waiting.values()) for (const waiter of queue) clearTimeout(waiter.timer);
    this.#waiting.clear();
  }

  /** Runs `then` with the admission's decision: at once when it decides synchronously. */
  #decide(ip: string, then: (r: Refusal | null) => void): void {
    const r = this.admission.admit(ip);
    // An admission that fails to decide (none does today) refuses rather than admits unchecked.
    if (r instanceof Promise) r.then(then, () => then(REFUSED.max_connections));
    else then(r);
  }

  #settle(worker: WorkerId, id: number, ip: string, refusal: Refusal | null): void {
    if (this.#gone.has(worker)) {
      if (!refusal) this.admission.release(ip);
      return;
    }
    if (!refusal) this.#hold(worker, ip, 1);
    this.answer(worker, id, refusal);
  }

  /** Holds back a per-IP refusal for graceMs; false when too many already wait. */
  #wait(worker: WorkerId, id: number, ip: string): boolean {
    const key = clientKey(ip);
    let queue = this.#waiting.get(key);
    if (!queue) this.#waiting.set(key, (queue = []));
    if (queue.length >= this.#maxWaiting) return false;
    const waiter: Waiter = {
      worker,
      id,
      ip,
      deciding: false,
      expired: false,
      timer: setTimeout(() => {
        if (waiter.deciding) {
          waiter.expired = true;
          return;
        }
        this.#unwait(key, waiter);
        this.#decide(ip, (r) => this.#settle(worker, id, ip, r));
      }, this.#graceMs),
    };
    waiter.timer.unref();
    queue.push(waiter);
    return true;
  }

  #unwait(key: string, waiter: Waiter): void {
    const queue = this.#waiting.get(key);
    if (!queue) return;
    const i = queue.indexOf(waiter);
    if (i >= 0) queue.splice(i, 1);
    if (queue.length === 0) this.#waiting.delete(key);
  }

  /** A connection of `key` was released: the oldest waiting admits get the room, one at a time. */
  #retry(key: string): void {
    if (this.#retrying.has(key)) {
      // A decision is on its way for this key: it tries again when it comes.
      this.#retrying.set(key, true);
      return;
    }
    this.#retrying.set(key, false);
    const step = (): void => {
      const first = this.#waiting.get(key)?.[0];
      if (!first) {
        this.#retrying.delete(key);
        return;
      }
      first.deciding = true;
      this.#decide(first.ip, (refusal) => {
        first.deciding = false;
        const queued = this.#waiting.get(key)?.includes(first) === true;
        if (queued && refusal?.limit === 'per_ip_connections' && !first.expired) {
          // Still no room: it keeps waiting, unless another release came meanwhile.
          if (this.#retrying.get(key) === true) {
            this.#retrying.set(key, false);
            return step();
          }
          this.#retrying.delete(key);
          return;
        }
        clearTimeout(first.timer);
        this.#unwait(key, first);
        this.#settle(first.worker, first.id, first.ip, refusal);
        step();
      });
    };
    step();
  }

  #hold(worker: WorkerId, ip: string, delta: number): void {
    if (this.#gone.has(worker)) return;
    let per = this.#held.get(worker);
    if (!per) this.#held.set(worker, (per = new Map()));
    const n = (per.get(ip) ?? 0) + delta;
    if (n <= 0) per.delete(ip);
    else per.set(ip, n);
    if (per.size === 0) this.#held.delete(worker);
  }
}
