// `workers: N`: one primary and N worker processes sharing the listeners (node:cluster,
// each worker accepting on the shared socket). The primary holds what must be one for all
// workers: per-IP connection counts and rates, the aggregated metrics, the live-session
// view, and the signals (SIGHUP reload, SIGTERM drain).

import cluster, { type Worker } from 'node:cluster';
import type { LimitsConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { BackendSnapshot, SessionSnapshot } from '../observe/status-server.js';
import { Admission, clientKey, type AdmissionControl, type Refusal } from './admission.js';

/** Messages between primary and workers; every one carries `postern` so others pass by. */
export type ClusterMessage =
  | { postern: 'admit'; id: number; ip: string }
  | { postern: 'admitted'; id: number; refusal: Refusal | null }
  | { postern: 'release'; ip: string }
  | { postern: 'force'; ip: string }
  | { postern: 'ready' }
  | { postern: 'failed'; message: string }
  | { postern: 'reload' }
  | { postern: 'stop' }
  | { postern: 'status'; sessions: SessionSnapshot[]; backends: BackendSnapshot[]; ready: boolean }
  /** Several of the others (admit/release/force up, admitted down), to be handled in order. */
  | { postern: 'batch'; msgs: SingleMessage[] };

/** Any message but a batch: what a batch carries. */
export type SingleMessage = Exclude<ClusterMessage, { postern: 'batch' }>;

/** Worker to primary: the per-connection traffic that is queued and sent in batches. */
type AdmissionMessage = Extract<ClusterMessage, { postern: 'admit' | 'release' | 'force' }>;

function isMessage(m: unknown): m is ClusterMessage {
  return typeof m === 'object' && m !== null && typeof (m as { postern?: unknown }).postern === 'string';
}

/** The messages one IPC message carries, a batch unwrapped. */
function unwrap(m: ClusterMessage): readonly SingleMessage[] {
  if (m.postern !== 'batch') return [m];
  return Array.isArray(m.msgs) ? (m.msgs.filter(isMessage) as SingleMessage[]) : [];
}

/** A batch of one goes as itself; both forms are accepted on either side. */
function wrap(msgs: SingleMessage[]): ClusterMessage {
  return msgs.length === 1 ? msgs[0]! : { postern: 'batch', msgs };
}

/**
 * Messages queued during one event-loop turn and delivered together, in order, at its end
 * (setImmediate): one IPC write (one serialisation, one syscall) instead of one per message.
 * At most one delivery is scheduled at a time; `flush()` delivers at once what is queued.
 */
export class Batcher<M> {
  #queue: M[] = [];
  #scheduled = false;

  constructor(
    private readonly deliver: (msgs: M[]) => void,
    private readonly schedule: (run: () => void) => void = (run) => void setImmediate(run),
  ) {}

  push(m: M): void {
    this.#queue.push(m);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.schedule(() => {
      this.#scheduled = false;
      this.flush();
    });
  }

  flush(): void {
    if (this.#queue.length === 0) return;
    const msgs = this.#queue;
    this.#queue = [];
    this.deliver(msgs);
  }

  get size(): number {
    return this.#queue.length;
  }
}

// ---- worker side -----------------------------------------------------------------------

/** Admission asked of the primary over IPC, so per-IP caps hold across workers. */
export class RemoteAdmission implements AdmissionControl {
  #next = 0;
  readonly #pending = new Map<number, (r: Refusal | null) => void>();

  constructor() {
    process.on('message', (m: unknown) => {
      if (!isMessage(m)) return;
      if (m.postern === 'admitted') this.#answer(m);
      else if (m.postern === 'batch') for (const one of unwrap(m)) if (one.postern === 'admitted') this.#answer(one);
    });
  }

  #answer(m: { id: number; refusal: Refusal | null }): void {
    const done = this.#pending.get(m.id);
    this.#pending.delete(m.id);
    done?.(m.refusal);
  }

  admit(ip: string): Promise<Refusal | null> {
    const id = ++this.#next;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      send({ postern: 'admit', id, ip });
    });
  }

  release(ip: string): void {
    send({ postern: 'release', ip });
  }

  force(ip: string): void {
    send({ postern: 'force', ip });
  }

  update(): void {
    // The primary reloads the limits itself.
  }

  close(): void {
    toPrimary.flush();
    this.#pending.clear();
  }
}

function sendNow(m: ClusterMessage): void {
  if (process.send && process.connected) process.send(m);
}

/** Admission traffic to the primary, one IPC message per event-loop turn. */
const toPrimary = new Batcher<SingleMessage>((msgs) => sendNow(wrap(msgs)));

/**
 * To the primary. admit/release/force are queued and go at the end of this turn; any other
 * message first sends what is queued, so it never overtakes them (and goes at once: a
 * `failed` must leave before the process exits).
 */
export function send(m: SingleMessage): void {
  if (isAdmission(m)) return toPrimary.push(m);
  toPrimary.flush();
  sendNow(m);
}

function isAdmission(m: SingleMessage): m is AdmissionMessage {
  return m.postern === 'admit' || m.postern === 'release' || m.postern === 'force';
}

/** Messages from the primary, batches unwrapped. */
export function onPrimaryMessage(handler: (m: SingleMessage) => void): void {
  process.on('message', (m: unknown) => {
    if (isMessage(m)) for (const one of unwrap(m)) handler(one);
  });
}

// ---- primary side ------------------------------------------------------------------------

export interface PrimaryOptions {
  workers: number;
  limits: LimitsConfig;
  logger: Logger;
  /** Validates the config file again on SIGHUP; returns its limits, or throws. */
  reloadCheck: () => LimitsConfig;
  /** How long a draining worker may take before it is killed. */
  stopTimeoutMs: number;
}

/** The primary's view of its workers, fed by their periodic status messages. */
export interface ClusterView {
  sessions(): SessionSnapshot[];
  backends(): BackendSnapshot[];
  ready(): boolean;
}

/**
 * How long the primary holds back a per-IP connection refusal, waiting for a release of
 * that address that may still be on its way. A worker releases a connection when its
 * socket has closed, which a client can see before that (it closes on the server's FIN), and
 * a release from one worker has no order with an admit from another: a client that quits
 * and reconnects at once would otherwise often be refused with per_ip.connections: 1.
 * Only refusals wait; admitted connections are answered at once.
 */
export const RELEASE_GRACE_MS = 100;
/** Refusals held back per address at most; beyond, they are answered at once. */
const MAX_WAITING_PER_KEY = 64;

interface Waiter {
  w: Worker;
  id: number;
  ip: string;
  timer: NodeJS.Timeout;
}

export class Primary implements ClusterView {
  readonly #admission: Admission;
  /** Per worker, the connections it holds per IP: released if the worker dies. */
  readonly #held = new Map<number, Map<string, number>>();
  readonly #status = new Map<number, { sessions: SessionSnapshot[]; backends: BackendSnapshot[]; ready: boolean }>();
  #stopping = false;

  constructor(private readonly opts: PrimaryOptions) {
    this.#admission = new Admission(opts.limits);
    // Workers accept on the shared socket themselves: no hop through the primary.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
  }

  /** Forks the workers; resolves once all are listening, rejects with the first start-up error. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      let ready = 0;
      let failed = false;
      cluster.on('message', (w: Worker, m: unknown) => this.#onMessage(w, m));
      const early = (w: Worker, code: number | null) => {
        if (ready >= this.opts.workers || failed) return;
        failed = true;
        reject(new Error(this.#failures.get(w.id) ?? `worker exited with code ${code} while starting`));
      };
      cluster.on('exit', (w, code) => {
        this.#forget(w.id);
        if (ready < this.opts.workers) return early(w, code);
        if (this.#stopping) return;
        this.opts.logger.error({ worker: w.id, code }, 'worker died; starting another');
        setTimeout(() => this.#fork(), 500).unref();
      });
      this.#onReady = () => {
        if (++ready === this.opts.workers) resolve();
      };
      for (let i = 0; i < this.opts.workers; i++) this.#fork();
    });
  }

  #onReady: () => void = () => undefined;
  readonly #failures = new Map<number, string>();

  #fork(): void {
    cluster.fork({ POSTERN_WORKER: '1' });
  }

  /** Per worker, its `admitted` replies of this turn. */
  readonly #replies = new Map<number, Batcher<SingleMessage>>();

  #repliesTo(w: Worker): Batcher<SingleMessage> {
    let b = this.#replies.get(w.id);
    if (!b) {
      b = new Batcher((msgs) => {
        if (w.isConnected()) w.send(wrap(msgs));
      });
      this.#replies.set(w.id, b);
    }
    return b;
  }

  /** Anything but a reply: after the replies already queued for that worker. */
  #sendTo(w: Worker, m: SingleMessage): void {
    this.#replies.get(w.id)?.flush();
    // A worker that already exited (one that failed to start) would answer EPIPE.
    if (w.isConnected()) w.send(m);
  }

  #onMessage(w: Worker, m: unknown): void {
    if (!isMessage(m)) return;
    if (m.postern !== 'batch') return this.#handle(w, m);
    for (const one of unwrap(m)) this.#handle(w, one);
  }

  #handle(w: Worker, m: SingleMessage): void {
    switch (m.postern) {
      case 'admit': {
        const refusal = this.#admission.admit(m.ip);
        if (refusal?.limit === 'per_ip_connections' && this.#wait(w, m.id, m.ip)) return;
        this.#answer(w, m.id, m.ip, refusal);
        return;
      }
      case 'release':
        this.#admission.release(m.ip);
        this.#hold(w.id, m.ip, -1);
        this.#retry(clientKey(m.ip));
        return;
      case 'force':
        this.#admission.force(m.ip);
        this.#hold(w.id, m.ip, 1);
        return;
      case 'ready':
        this.#onReady();
        return;
      case 'failed':
        this.#failures.set(w.id, m.message);
        return;
      case 'status':
        this.#status.set(w.id, { sessions: m.sessions, backends: m.backends, ready: m.ready });
        return;
      default:
        return;
    }
  }

  #answer(w: Worker, id: number, ip: string, refusal: Refusal | null): void {
    if (!refusal) this.#hold(w.id, ip, 1);
    this.#repliesTo(w).push({ postern: 'admitted', id, refusal });
  }

  /** Per client key, the refused admits waiting for a release (oldest first). */
  readonly #waiting = new Map<string, Waiter[]>();

  /** Holds back a per-IP refusal for RELEASE_GRACE_MS; false when too many already wait. */
  #wait(w: Worker, id: number, ip: string): boolean {
    const key = clientKey(ip);
    let queue = this.#waiting.get(key);
    if (!queue) this.#waiting.set(key, (queue = []));
    if (queue.length >= MAX_WAITING_PER_KEY) return false;
    const waiter: Waiter = {
      w,
      id,
      ip,
      timer: setTimeout(() => {
        this.#unwait(key, waiter);
        this.#answer(w, id, ip, this.#admission.admit(ip));
      }, RELEASE_GRACE_MS),
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

  /** A connection of `key` was released: the oldest waiting admits get the room. */
  #retry(key: string): void {
    const queue = this.#waiting.get(key);
    if (!queue) return;
    while (queue.length > 0) {
      const first = queue[0]!;
      const refusal = this.#admission.admit(first.ip);
      if (refusal?.limit === 'per_ip_connections') break;
      queue.shift();
      clearTimeout(first.timer);
      this.#answer(first.w, first.id, first.ip, refusal);
    }
    if (queue.length === 0) this.#waiting.delete(key);
  }

  #hold(worker: number, ip: string, delta: number): void {
    let per = this.#held.get(worker);
    if (!per) this.#held.set(worker, (per = new Map()));
    const n = (per.get(ip) ?? 0) + delta;
    if (n <= 0) per.delete(ip);
    else per.set(ip, n);
  }

  /** A worker is gone: its connections are gone too. */
  #forget(worker: number): void {
    const per = this.#held.get(worker);
    if (per) for (const [ip, n] of per) for (let i = 0; i < n; i++) this.#admission.release(ip);
    this.#held.delete(worker);
    this.#status.delete(worker);
    this.#replies.delete(worker);
    for (const [key, queue] of this.#waiting) {
      for (const waiter of queue.filter((x) => x.w.id === worker)) {
        clearTimeout(waiter.timer);
        this.#unwait(key, waiter);
      }
    }
    // Its connections were released: room for those still waiting.
    if (per) for (const ip of per.keys()) this.#retry(clientKey(ip));
  }

  /** SIGHUP: check the new config here, then let every worker reload it. */
  reload(): void {
    let limits: LimitsConfig;
    try {
      limits = this.opts.reloadCheck();
    } catch (err) {
      this.opts.logger.error({ event: 'reload_failed', err: (err as Error).message }, 'reload refused: invalid config');
      return;
    }
    this.#admission.update(limits);
    for (const w of Object.values(cluster.workers ?? {})) if (w) this.#sendTo(w, { postern: 'reload' });
  }

  /** SIGTERM: every worker drains; resolves when all have exited. */
  stop(): Promise<void> {
    this.#stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    const exits = workers.map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
    for (const w of workers) this.#sendTo(w, { postern: 'stop' });
    const kill = setTimeout(() => workers.forEach((w) => w.process.kill('SIGKILL')), this.opts.stopTimeoutMs);
    kill.unref();
    return Promise.all(exits).then(() => {
      clearTimeout(kill);
      for (const queue of this.#waiting.values()) for (const waiter of queue) clearTimeout(waiter.timer);
      this.#waiting.clear();
      this.#admission.close();
    });
  }

  sessions(): SessionSnapshot[] {
    return [...this.#status.values()].flatMap((s) => s.sessions);
  }

  /** A backend is up when any worker finds it up; counts add up across workers. */
  backends(): BackendSnapshot[] {
    const merged = new Map<string, BackendSnapshot>();
    for (const s of this.#status.values()) {
      for (const b of s.backends) {
        const m = merged.get(b.address);
        if (!m) merged.set(b.address, { ...b });
        else {
          m.active += b.active;
          if (b.up === true) m.up = true;
          else if (m.up === null) m.up = b.up;
        }
      }
    }
    return [...merged.values()];
  }

  ready(): boolean {
    return [...this.#status.values()].some((s) => s.ready);
  }
}
