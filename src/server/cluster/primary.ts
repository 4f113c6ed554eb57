// The primary of `workers: N`: forks the workers, which accept on the shared listeners
// themselves, and answers them for what must be one for all of them: per-IP connection
// counts and rates, window counts, the TLS session cache, backend health (states asked,
// changes broadcast), and the live-session view. Its one cluster 'message' listener hands
// every message to the handler of its kind (dispatcher.ts). Signals are serve.ts's.

import cluster, { type Worker } from 'node:cluster';
import type { Config, LimitsConfig } from '../../config/types.js';
import type { Logger } from '../../observe/logger.js';
import type { BackendSnapshot, SessionSnapshot } from '../../observe/status-server.js';
import { answerWindow } from './windows.js';
import { LocalWindowCounter, type WindowCounter } from '../../state/windows.js';
import { Admission, type AdmissionControl } from '../admission.js';
import { HeldAdmission, LEASE_MAX } from './held-admission.js';
import type { SessionStore } from '../../tls/session-store.js';
import type { HealthState, SessionOutcome } from '../../backend/health-monitor.js';
import { Dispatcher } from './dispatcher.js';
import { Batcher, wrap, type ListeningOn, type SingleMessage } from './messages.js';
import { answerTlsSession } from './tls-sessions.js';

/** How long a worker may take to apply a reload (certificates, a verifier, a first health check). */
export const RELOAD_ANSWER_MS = 30_000;

export interface PrimaryOptions {
  workers: number;
  limits: LimitsConfig;
  logger: Logger;
  /** How long a draining worker may take before it is killed (changed by reload()). */
  stopTimeoutMs: number;
  /** Where per-IP decisions are made; a local Admission by default. */
  admission?: AdmissionControl;
  /** The window counts workers share (auth failures); in this process by default. */
  windows?: WindowCounter;
  /** More environment for every worker (e.g. the inherited sockets to listen on). */
  workerEnv?: Record<string, string>;
  /** The host's TLS session cache, which workers ask over IPC (none: TLS off or no session cache). */
  tlsSessions?: SessionStore | null;
  /** The host's backend health, which workers follow (none: each worker checks its own). */
  health?: { states(): HealthState[]; report(o: SessionOutcome): void } | null;
  /** Where the listeners listen, as the workers report it (one `listening` record each, once all serve). */
  onListening?: (on: ListeningOn[]) => void;
  /** The config in force, which a starting worker asks for (worker-config.ts). */
  config: () => Config;
}

/** A listening socket a worker sent for an upgrade: a native handle with its descriptor. */
export interface SentSocket {
  name: string;
  handle: { fd?: number; close(): void };
}

/** The primary's view of its workers, fed by their periodic status messages. */
export interface ClusterView {
  sessions(): SessionSnapshot[];
  backends(): BackendSnapshot[];
  ready(): boolean;
}

export class Primary implements ClusterView {
  readonly #admission: AdmissionControl;
  readonly #held: HeldAdmission;
  readonly #windows: WindowCounter;
  readonly #status = new Map<number, { sessions: SessionSnapshot[]; backends: BackendSnapshot[]; ready: boolean }>();
  #stopping = false;
  #stopTimeoutMs: number;

  constructor(private readonly opts: PrimaryOptions) {
    this.#stopTimeoutMs = opts.stopTimeoutMs;
    this.#admission = opts.admission ?? new Admission(opts.limits);
    this.#windows = opts.windows ?? new LocalWindowCounter();
    this.#held = new HeldAdmission(
      this.#admission,
      (worker, id, refusal, lease) => {
        const w = cluster.workers?.[worker];
        if (w) this.#repliesTo(w).push(lease ? { postern: 'admitted', id, refusal, lease } : { postern: 'admitted', id, refusal });
      },
      {
        lease: {
          max: LEASE_MAX,
          workers: () => opts.workers,
          recall: (worker, ip) => {
            const w = cluster.workers?.[worker];
            if (w) this.#repliesTo(w).push({ postern: 'recall', ip });
          },
        },
      },
    );
    // Workers accept on the shared socket themselves: no hop through the primary.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    this.#route();
  }

  /** Every kind a worker sends, to the one that handles it. */
  readonly #ipc = new Dispatcher<Worker>();

  #route(): void {
    const on = this.#ipc;
    on.on('admit', (m, w) => this.#held.admit(w.id, m.id, m.ip));
    on.on('release', (m, w) => this.#held.release(w.id, m.ip));
    on.on('force', (m, w) => this.#held.force(w.id, m.ip));
    on.on('unlease', (m, w) => this.#held.unlease(w.id, m.ip, Number(m.n) || 0, Number(m.seq) || 0));
    on.on('window', (m, w) => answerWindow(this.#windows, m, (r) => this.#sendTo(w, r)));
    on.on('tls-session', (m, w) => {
      const store = this.opts.tlsSessions;
      if (store) answerTlsSession(store, m, (r) => this.#sendTo(w, r));
      else this.#sendTo(w, { postern: 'tls-session-reply', id: m.id, data: null });
    });
    on.on('config?', (_m, w) => this.#sendTo(w, { postern: 'config', config: this.opts.config() }));
    on.on('health?', (m, w) => this.#sendTo(w, { postern: 'health', id: m.id, states: this.opts.health?.states() ?? [] }));
    on.on('session-outcome', (m) => this.opts.health?.report(m.outcome));
    on.on('ready', (m, w) => {
      if (Array.isArray(m.listening)) this.#listening = m.listening;
      this.#onReady(this.#listening, w);
    });
    on.on('failed', (m) => void (this.#firstFailure ??= m.message));
    on.on('status', (m, w) => void this.#status.set(w.id, { sessions: m.sessions, backends: m.backends, ready: m.ready }));
    on.on('reloaded', (m, w) => {
      if (Array.isArray(m.listening)) this.#listening = m.listening;
      this.#reloads.get(m.id)?.(w.id, m.error);
    });
    on.on('socket', (m, _w, handle) => this.#onSocket?.(m, handle));
  }

  /** Where the workers listen, as the last one to start or reload said. */
  #listening: ListeningOn[] = [];

  get listening(): readonly ListeningOn[] {
    return this.#listening;
  }

  /** To every worker (a backend's state changed). */
  broadcast(m: SingleMessage): void {
    for (const w of Object.values(cluster.workers ?? {})) if (w) this.#sendTo(w, m);
  }

  /** Forks the workers; resolves once all are listening, rejects with the first start-up error. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      let ready = 0;
      let failed = false;
      cluster.on('message', (w: Worker, m: unknown, handle: unknown) => this.#ipc.dispatch(m, w, handle));
      const early = (w: Worker, code: number | null) => {
        if (ready >= this.opts.workers || failed) return;
        failed = true;
        reject(new Error(this.#firstFailure ?? `worker ${w.id} exited with code ${code} while starting`));
      };
      cluster.on('exit', (w, code) => {
        this.#forget(w.id);
        if (ready < this.opts.workers) return early(w, code);
        if (this.#stopping) return;
        this.opts.logger.error({ worker: w.id, code }, 'worker died; starting another');
        // Not unref'd: with every worker dead nothing else may hold the loop, and the primary
        // would exit without a word (stop() clears these).
        const respawn = setTimeout(() => {
          this.#respawns.delete(respawn);
          if (!this.#stopping) this.#fork();
        }, 500);
        this.#respawns.add(respawn);
      });
      // `listening` once every worker serves: before that a worker may still be reading the
      // config (a SIGHUP with a new file then would reach a worker that read the old one).
      this.#onReady = (listening, w) => {
        if (ready >= this.opts.workers) {
          this.opts.logger.info({ worker: w.id, pid: w.process.pid }, 'worker running (replaces one that died)');
          return;
        }
        if (++ready !== this.opts.workers) return;
        this.opts.onListening?.(listening);
        resolve();
      };
      for (let i = 0; i < this.opts.workers; i++) this.#fork();
    });
  }

  #onReady: (listening: ListeningOn[], w: Worker) => void = () => undefined;
  /**
   * The first start-up failure any worker reported. It is the cause; a worker that exits first
   * may have failed because of it: workers share the inherited sockets through this process,
   * and the failed worker's release of one can close it before the other worker's request.
   */
  #firstFailure: string | null = null;

  #fork(): void {
    const w = cluster.fork(this.opts.workerEnv ?? {});
    // A message to a worker that has just died fails asynchronously (EPIPE) whatever
    // isConnected() said a moment before: its exit is handled on 'exit', never a crash here.
    w.on('error', () => undefined);
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

  #onSocket: ((m: { name: string; index: number; count: number }, handle: unknown) => void) | null = null;

  /**
   * For an upgrade: the listening sockets, as one worker holds them (node:cluster made them
   * here and keeps them to itself). The caller closes the handles when done.
   */
  listeningSockets(timeoutMs = 5000): Promise<SentSocket[]> {
    const w = Object.values(cluster.workers ?? {}).find((x): x is Worker => !!x && x.isConnected() && this.#status.has(x.id));
    if (!w) return Promise.reject(new Error('no worker running to take the listening sockets from'));
    return new Promise((resolve, reject) => {
      const got: SentSocket[] = [];
      const done = (err: Error | null) => {
        clearTimeout(timer);
        this.#onSocket = null;
        if (err) {
          got.forEach((s) => s.handle.close());
          reject(err);
        } else resolve(got);
      };
      const timer = setTimeout(() => done(new Error(`worker ${w.id} did not send its listening sockets within ${timeoutMs} ms`)), timeoutMs);
      this.#onSocket = (m, handle) => {
        if (m.count === 0) return done(new Error('the worker has no listening socket'));
        const h = handle as SentSocket['handle'] | undefined;
        if (h && typeof h.close === 'function') got.push({ name: String(m.name), handle: h });
        if (m.index === m.count - 1) done(got.length === m.count ? null : new Error('a listening socket did not arrive'));
      };
      this.#sendTo(w, { postern: 'sockets?' });
    });
  }

  /** A worker is gone: its connections are gone too. */
  #forget(worker: number): void {
    this.#held.forget(worker);
    this.#status.delete(worker);
    this.#replies.delete(worker);
    // Its replacement reads the config file as it starts: nothing to wait for.
    for (const answer of [...this.#reloads.values()]) answer(worker, null);
  }

  #reloadId = 0;
  /** Reloads under way: each worker's answer, by reload id. */
  readonly #reloads = new Map<number, (worker: number, error: string | null) => void>();

  /**
   * SIGHUP, once the caller has loaded the new config: its limits and drain deadline here,
   * then every worker loads and applies it too. Resolves with the workers' failures, empty
   * when all applied it; a worker that does not answer within `timeoutMs` is one.
   */
  reload(limits: LimitsConfig, stopTimeoutMs: number, timeoutMs = RELOAD_ANSWER_MS): Promise<string[]> {
    this.#admission.update(limits);
    this.#stopTimeoutMs = stopTimeoutMs;
    const id = ++this.#reloadId;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && w.isConnected());
    return new Promise((resolve) => {
      const waiting = new Set(workers.map((w) => w.id));
      const failures: string[] = [];
      const finish = () => {
        clearTimeout(timer);
        this.#reloads.delete(id);
        resolve(failures);
      };
      const timer = setTimeout(() => {
        for (const w of waiting) failures.push(`worker ${w} did not answer within ${timeoutMs} ms`);
        finish();
      }, timeoutMs);
      this.#reloads.set(id, (worker, error) => {
        if (!waiting.delete(worker)) return;
        if (error !== null) failures.push(`worker ${worker}: ${error}`);
        if (waiting.size === 0) finish();
      });
      if (waiting.size === 0) return finish();
      for (const w of workers) this.#sendTo(w, { postern: 'reload', id });
    });
  }

  /** Replacements of dead workers, due in a moment. */
  readonly #respawns = new Set<NodeJS.Timeout>();

  /** SIGTERM: every worker drains; resolves when all have exited. */
  stop(): Promise<void> {
    this.#stopping = true;
    for (const t of this.#respawns) clearTimeout(t);
    this.#respawns.clear();
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    const exits = workers.map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r()))));
    for (const w of workers) this.#sendTo(w, { postern: 'stop' });
    const kill = setTimeout(() => workers.forEach((w) => w.process.kill('SIGKILL')), this.#stopTimeoutMs);
    kill.unref();
    return Promise.all(exits).then(() => {
      clearTimeout(kill);
      this.#held.close();
      this.#admission.close();
      this.#windows.close();
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
        const key = `${b.pool ?? ''}|${b.address}`;
        const m = merged.get(key);
        if (!m) merged.set(key, { ...b });
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
