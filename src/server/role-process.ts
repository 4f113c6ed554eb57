// A process that serves sessions itself: the single process (its own host), or a cluster
// worker, whose host is its primary: admission, windows, the TLS session cache and backend
// health asked of it over IPC, its status pushed to it, reload/stop/sockets told by it.

import cluster from 'node:cluster';
import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { Metrics } from '../observe/metrics.js';
import { proxySources } from '../observe/status-server.js';
import { IpcSessionStore } from './cluster/tls-sessions.js';
import { ClusterWindowCounter } from './cluster/windows.js';
import { readWorkerEnv, withTicketKeyFile, type WorkerHandOff } from './cluster/worker-env.js';
import { healthFeed, RemoteAdmission, send, serveAsWorker, tlsSessionChannel, windowChannel } from './cluster/worker.js';
import { describeError } from './describe.js';
import type { Host, ServedView } from './host.js';
import { Postern } from './postern.js';
import type { Role, ServeControl } from './role.js';
import { redisTicketKeys } from './shared-state.js';
import type { HandedSocket } from './upgrade.js';

export class ProcessRole implements Role {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** A worker's hand-off from its primary; null in a single process. */
  readonly #handOff: WorkerHandOff | null;
  readonly #initial: Config;
  #postern: Postern | null = null;
  #closeState: () => Promise<void> = async () => undefined;

  constructor(
    readonly name: 'single' | 'worker',
    config: Config,
    private readonly base: Logger,
    private readonly onStarted?: (p: Postern) => void,
  ) {
    const worker = name === 'worker';
    this.#handOff = worker ? readWorkerEnv() : null;
    // A worker's backend health metrics are its primary's (it runs the checks).
    this.metrics = new Metrics({ processMetrics: true, hostHealth: !worker });
    this.logger = worker ? base.child({ pid: process.pid, worker: cluster.worker?.id ?? null }) : base;
    this.#initial = this.prepare(config);
  }

  get registry() {
    return this.metrics.registry;
  }

  get config(): Config {
    return this.#postern?.config ?? this.#initial;
  }

  prepare(config: Config): Config {
    return withTicketKeyFile(config, this.#handOff?.ticketKeyFile ?? null);
  }

  async start(host: Host | null): Promise<void> {
    const config = this.#initial;
    const tickets = await redisTicketKeys(config, host?.shared.link ?? null, this.base);
    // The host's TLS session cache: here, or the primary's (asked over IPC).
    const ipcSessions = !host && config.tls && config.tls.session_cache.size > 0 ? new IpcSessionStore(tlsSessionChannel()) : null;
    this.#closeState = async () => {
      ipcSessions?.close();
      await tickets.close();
    };
    const postern = new Postern(config, {
      logger: this.base,
      processLogger: this.logger,
      metrics: this.metrics,
      admission: host?.shared.admission ?? new RemoteAdmission(),
      windows: host?.shared.windows ?? new ClusterWindowCounter(windowChannel()),
      sockets: host?.sockets ?? this.#handOff?.sockets,
      ticketKeys: tickets.backing,
      sessionStore: ipcSessions ?? host?.tlsSessions?.cache,
      healthFeed: host ? null : healthFeed(),
      announce: host !== null,
    });
    // Set once started: one that failed to start has cleaned up after itself, nothing to drain.
    await postern.start();
    this.#postern = postern;
    this.onStarted?.(postern);
  }

  view(): ServedView {
    return proxySources(this.#running());
  }

  files(): (string | null)[] {
    return [];
  }

  async apply(next: Config): Promise<string[]> {
    try {
      await this.#running().reload(next);
      return [];
    } catch (err) {
      return [describeError(err)];
    }
  }

  async listening(): Promise<{ sockets: HandedSocket[]; release(): void }> {
    const sockets = this.#running().listeners.flatMap((l) => {
      const fd = l.fd();
      return fd === null ? [] : [{ fd, name: l.cfg.name }];
    });
    return { sockets, release: () => undefined };
  }

  serving(ctl: ServeControl): void {
    if (this.name === 'worker') serveAsWorker(this.#running(), ctl);
  }

  failed(error: string): void {
    if (this.name === 'worker') send({ postern: 'failed', message: error });
  }

  async drain(graceMs?: number): Promise<void> {
    await this.#postern?.stop(graceMs);
  }

  async close(): Promise<void> {
    await this.#closeState();
  }

  #running(): Postern {
    if (!this.#postern) throw new Error('not started');
    return this.#postern;
  }
}
