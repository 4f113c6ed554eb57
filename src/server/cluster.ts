// `workers: N`: one primary and N worker processes sharing the listeners (node:cluster,
// each worker accepting on the shared socket). The primary holds what must be one for all
// workers: per-IP connection counts and rates, the aggregated metrics, the live-session
// view, and the signals (SIGHUP reload, SIGTERM drain).

import cluster, { type Worker } from 'node:cluster';
import type { LimitsConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { BackendSnapshot, SessionSnapshot } from '../observe/status-server.js';
import { Admission, type AdmissionControl, type Refusal } from './admission.js';

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
  | { postern: 'status'; sessions: SessionSnapshot[]; backends: BackendSnapshot[]; ready: boolean };

function isMessage(m: unknown): m is ClusterMessage {
  return typeof m === 'object' && m !== null && typeof (m as { postern?: unknown }).postern === 'string';
}

// ---- worker side -----------------------------------------------------------------------

/** Admission asked of the primary over IPC, so per-IP caps hold across workers. */
export class RemoteAdmission implements AdmissionControl {
  #next = 0;
  readonly #pending = new Map<number, (r: Refusal | null) => void>();

  constructor() {
    process.on('message', (m: unknown) => {
      if (!isMessage(m) || m.postern !== 'admitted') return;
      const done = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      done?.(m.refusal);
    });
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
    this.#pending.clear();
  }
}

export function send(m: ClusterMessage): void {
  if (process.send && process.connected) process.send(m);
}

export function onPrimaryMessage(handler: (m: ClusterMessage) => void): void {
  process.on('message', (m: unknown) => {
    if (isMessage(m)) handler(m);
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

  #onMessage(w: Worker, m: unknown): void {
    if (!isMessage(m)) return;
    switch (m.postern) {
      case 'admit': {
        const refusal = this.#admission.admit(m.ip);
        if (!refusal) this.#hold(w.id, m.ip, 1);
        w.send({ postern: 'admitted', id: m.id, refusal } satisfies ClusterMessage);
        return;
      }
      case 'release':
        this.#admission.release(m.ip);
        this.#hold(w.id, m.ip, -1);
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
    for (const w of Object.values(cluster.workers ?? {})) w?.send({ postern: 'reload' } satisfies ClusterMessage);
  }

  /** SIGTERM: every worker drains; resolves when all have exited. */
  stop(): Promise<void> {
    this.#stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    const exits = workers.map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
    for (const w of workers) w.send({ postern: 'stop' } satisfies ClusterMessage);
    const kill = setTimeout(() => workers.forEach((w) => w.process.kill('SIGKILL')), this.opts.stopTimeoutMs);
    kill.unref();
    return Promise.all(exits).then(() => {
      clearTimeout(kill);
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
