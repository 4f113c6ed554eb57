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
//  - leases (issue 26): with the host's own Admission (no Redis), an admitted connection comes
//    back with a few more admissions of the same address, decided and counted here at once,
//    which the worker spends without asking (no IPC round trip per connection). Only part of
//    the room is leased (a share per worker, never the last of it), the worker gives back
//    what it has not used within LEASE_IDLE_MS, and a refusal that leased admissions might
//    have caused first recalls them and waits for them (as it waits for a release), so the
//    limits hold as exactly as without leases.

import { clientKey } from '../../net/ip.js';
import { Admission, REFUSED, type AdmissionControl, type Refusal } from '../admission.js';

export type WorkerId = number;

export interface HeldAdmissionOptions {
  /** How long a per-IP connection refusal waits for a release (default RELEASE_GRACE_MS). */
  graceMs?: number;
  /** Refusals held back per address at most; beyond, they are answered at once. */
  maxWaitingPerKey?: number;
  /** Lease admissions to workers (only with a local Admission: Redis decides each one itself). */
  lease?: LeaseOptions;
}

export interface LeaseOptions {
  /** Most admissions leased with one connection. */
  max: number;
  /** How many workers share the room: each is leased at most half its share. */
  workers: () => number;
  /** Asks a worker for the unused admissions of `ip` it was leased (it answers with unlease). */
  recall: (worker: WorkerId, ip: string) => void;
}

/** Admissions leased to a worker for one address, spent by it without asking. */
export interface Lease {
  ip: string;
  n: number;
  /** This grant's number: an unlease names the last grant it gives back. */
  seq: number;
}

/**
 * Most admissions leased with one connection (one IPC round trip for this many connections).
 * Only limits far above the traffic let a lease grow this large: it is also capped at half of
 * one worker's share of the address's headroom (5 with the default per_ip limits and 2 workers).
 */
export const LEASE_MAX = 64;
/** A worker gives back the admissions of an address it has not spent for this long. */
export const LEASE_IDLE_MS = 250;

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

type Answer = (worker: WorkerId, id: number, refusal: Refusal | null, lease: Lease | null) => void;

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
  readonly #lease: LeaseOptions | null;
  /** The admission leases are drawn from (synchronous, with headroom): null when not leasing. */
  readonly #leasable: Admission | null;
  #seq = 0;
  /** Per client key, per worker, per address: the last grant it may still hold admissions of. */
  readonly #leased = new Map<string, Map<WorkerId, Map<string, number>>>();
  /** Per client key, the workers asked to give its leases back and not answered yet. */
  readonly #recalled = new Map<string, Set<WorkerId>>();

  constructor(
    private readonly admission: AdmissionControl,
    private readonly answer: Answer,
    opts: HeldAdmissionOptions = {},
  ) {
    this.#graceMs = opts.graceMs ?? RELEASE_GRACE_MS;
    this.#maxWaiting = opts.maxWaitingPerKey ?? MAX_WAITING_PER_KEY;
    this.#leasable = opts.lease && admission instanceof Admission ? admission : null;
    this.#lease = this.#leasable ? opts.lease! : null;
  }

  /** Decides for a worker's new connection; the answer comes through the callback (maybe at once). */
  admit(worker: WorkerId, id: number, ip: string): void {
    this.#decide(ip, (refusal) => {
      if (refusal && this.#mayWait(refusal, ip) && this.#wait(worker, id, ip)) return;
      this.#settle(worker, id, ip, refusal);
    });
  }

  /**
   * A worker gives back `n` unused admissions of `ip` leased up to grant `seq` (when idle, when
   * recalled, or n = 0 once it spent them all): their places and rate slots are free again.
   */
  unlease(worker: WorkerId, ip: string, n: number, seq: number): void {
    const key = clientKey(ip);
    const adm = this.#leasable;
    if (adm && !this.#gone.has(worker)) {
      // Never more than the worker holds of it (its connections included).
      const back = Math.max(0, Math.min(Math.floor(n), this.#held.get(worker)?.get(ip) ?? 0));
      for (let i = 0; i < back; i++) adm.unadmit(ip);
      this.#hold(worker, ip, -back);
    }
    const byIp = this.#leased.get(key)?.get(worker);
    if (byIp && (byIp.get(ip) ?? 0) <= seq) byIp.delete(ip);
    // Nothing of this address left with the worker: no recall of it is out either.
    if (!byIp || byIp.size === 0) this.#unmark(key, worker);
    this.#retryAll();
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
    // Its leased admissions are among what it held, released below.
    for (const key of [...this.#leased.keys()]) this.#unmark(key, worker);
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
    this.#retryAll();
  }

  /** Addresses with admissions leased to some worker (for tests and status). */
  get leasedKeys(): number {
    return this.#leased.size;
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
    let lease: Lease | null = null;
    if (!refusal) {
      this.#hold(worker, ip, 1);
      lease = this.#grant(worker, ip);
    }
    this.answer(worker, id, refusal, lease);
  }

  /** More admissions of `ip` for `worker`, decided now: half its share of the room left, at most LEASE_MAX. */
  #grant(worker: WorkerId, ip: string): Lease | null {
    const adm = this.#leasable;
    const opts = this.#lease;
    if (!adm || !opts) return null;
    const key = clientKey(ip);
    // Room freed while others wait is theirs; and none is leased while a recall is out.
    if (this.#waiting.has(key) || this.#recalled.has(key)) return null;
    const want = Math.min(opts.max, Math.floor(adm.headroom(ip) / (2 * Math.max(1, opts.workers()))));
    let n = 0;
    while (n < want && adm.admit(ip) === null) n++;
    if (n === 0) return null;
    this.#hold(worker, ip, n);
    const seq = ++this.#seq;
    let byWorker = this.#leased.get(key);
    if (!byWorker) this.#leased.set(key, (byWorker = new Map()));
    let byIp = byWorker.get(worker);
    if (!byIp) byWorker.set(worker, (byIp = new Map()));
    byIp.set(ip, seq);
    return { ip, n, seq };
  }

  /**
   * Whether a refusal waits: a per-IP connection refusal always may (a release may be on its
   * way); any refusal that leased admissions could have caused recalls them and waits for them.
   */
  #mayWait(refusal: Refusal, ip: string): boolean {
    const recalling = this.#recall(refusal.limit === 'max_connections' ? null : clientKey(ip));
    return refusal.limit === 'per_ip_connections' || recalling;
  }

  /** Asks back the leases of `key` (null: of every address); true while any may be out. */
  #recall(key: string | null): boolean {
    if (!this.#lease) return false;
    let out = false;
    for (const k of key === null ? [...this.#leased.keys()] : [key]) {
      const byWorker = this.#leased.get(k);
      if (!byWorker) continue;
      let asked = this.#recalled.get(k);
      if (!asked) this.#recalled.set(k, (asked = new Set()));
      for (const [worker, byIp] of byWorker) {
        out = true;
        if (asked.has(worker)) continue;
        asked.add(worker);
        for (const ip of byIp.keys()) this.#lease.recall(worker, ip);
      }
    }
    return out;
  }

  #unmark(key: string, worker: WorkerId): void {
    const byWorker = this.#leased.get(key);
    byWorker?.delete(worker);
    if (byWorker?.size === 0) this.#leased.delete(key);
    const asked = this.#recalled.get(key);
    asked?.delete(worker);
    if (asked?.size === 0) this.#recalled.delete(key);
  }

  /** Leases came back: every waiting address may have room now (max_connections is shared by all). */
  #retryAll(): void {
    for (const key of [...this.#waiting.keys()]) this.#retry(key);
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
        if (queued && refusal && this.#mayWait(refusal, first.ip) && !first.expired) {
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
