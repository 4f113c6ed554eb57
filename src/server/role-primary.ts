// `workers: N`: the cluster primary. It forks and supervises the workers, which accept on
// the shared listeners, and serves what is the host's once for all of them: the per-IP and
// window counts (itself, or through Redis), the TLS session cache, the backend health
// checks, the `listening` records, and the metrics listener with their aggregated metrics.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { Metrics } from '../observe/metrics.js';
import { HostHealth } from './cluster/host-health.js';
import type { ListeningOn } from './cluster/messages.js';
import { Primary } from './cluster/primary.js';
import { workerEnv } from './cluster/worker-env.js';
import { InheritedSockets } from './inherited-sockets.js';
import type { Host, ServedView } from './host.js';
import { logListening } from './postern.js';
import type { Role } from './role.js';
import type { HandedSocket } from './upgrade.js';

/** How long past shutdown_grace a draining worker may take before it is killed. */
const STOP_SLACK_MS = 5000;

export class PrimaryRole implements Role {
  readonly name = 'primary';
  readonly registry = new Registry();
  #config: Config;
  #primary: Primary | null = null;
  #health: HostHealth | null = null;
  #keyDir: string | null = null;
  /** Inherited sockets the workers listen on, by listener name (for the `listening` records). */
  #inheritedFds = new Map<string, number>();

  constructor(
    config: Config,
    readonly logger: Logger,
  ) {
    this.#config = config;
  }

  get config(): Config {
    return this.#config;
  }

  prepare(config: Config): Config {
    return config;
  }

  async start(host: Host | null): Promise<void> {
    if (!host) throw new Error('a cluster primary is its host');
    const config = this.#config;
    // Inherited sockets matching a listener are the workers': node:cluster opens them here and shares them.
    const matched = new InheritedSockets(
      config.listeners.flatMap((l) => {
        const fd = host.sockets.take(l.listen, l.name);
        if (fd !== null) this.#inheritedFds.set(l.name, fd);
        return fd === null ? [] : [{ fd, name: l.name, host: l.listen.host, port: l.listen.port }];
      }),
    );
    // Workers share ticket keys through a private file, unless a file or Redis is configured.
    if (config.tls?.session_tickets && !config.tls.ticket_keys.file && !config.state.redis) {
      this.#keyDir = await mkdtemp(join(tmpdir(), 'postern-tickets-'));
    }
    const health = new HostHealth(config, {
      logger: this.logger,
      metrics: Metrics.hostHealth(this.registry),
      onChange: (state) => this.#primary?.broadcast({ postern: 'health-change', state }),
    });
    this.#health = health;
    // The first round before any worker asks for the states.
    await health.start();
    this.#primary = new Primary({
      workers: config.workers,
      limits: config.limits,
      logger: this.logger,
      stopTimeoutMs: config.shutdown_grace + STOP_SLACK_MS,
      admission: host.shared.admission,
      windows: host.shared.windows,
      workerEnv: workerEnv({ sockets: matched, ticketKeyFile: this.#keyFile() }),
      tlsSessions: host.tlsSessions?.cache ?? null,
      health,
      onListening: (on) => this.#announce(on, () => true, true),
      config: () => this.#config,
    });
    await this.#primary.start();
    this.logger.info({ workers: config.workers }, `${config.workers} workers running`);
  }

  /** One `listening` record per listener (those `fresh` says), for all the workers. */
  #announce(on: readonly ListeningOn[], fresh: (l: Config['listeners'][number]) => boolean, atStart: boolean): void {
    for (const l of this.#config.listeners) {
      const at = on.find((x) => x.listener === l.name);
      if (!fresh(l)) continue;
      if (at) logListening(this.logger, l, at.address, atStart ? (this.#inheritedFds.get(l.name) ?? null) : null);
    }
  }

  #keyFile(): string | null {
    return this.#keyDir && join(this.#keyDir, 'ticket-keys');
  }

  view(): ServedView {
    const primary = this.#running();
    // Counters and gauges summed over the workers by prom-client's cluster support, and the
    // primary's own (health checks, Redis's state, reloads).
    const aggregate = new AggregatorRegistry();
    return {
      metrics: {
        registry: {
          metrics: async () => (await aggregate.clusterMetrics()) + (await this.registry.metrics()),
          contentType: aggregate.contentType,
        },
      },
      sessions: () => primary.sessions(),
      backends: () => primary.backends(),
      ready: () => primary.ready(),
    };
  }

  files(): (string | null)[] {
    return [this.#keyFile()];
  }

  /** Checked here (limits, drain deadline, health checks), then applied by every worker. */
  async apply(next: Config): Promise<string[]> {
    await this.#health?.reload(next);
    const primary = this.#running();
    const failures = await primary.reload(next.limits, next.shutdown_grace + STOP_SLACK_MS);
    const was = this.#config;
    // Workers that applied it run the new config: the next reload compares with that.
    this.#config = next;
    // Listeners opened by this reload are told once too (a moved one is a new one).
    this.#announce(primary.listening, (l) => !was.listeners.some((o) => o.name === l.name && o.listen.text === l.listen.text), false);
    return failures;
  }

  async listening(): Promise<{ sockets: HandedSocket[]; release(): void }> {
    const sent = await this.#running().listeningSockets();
    const sockets = sent.flatMap((s) => (typeof s.handle.fd === 'number' && s.handle.fd >= 0 ? [{ fd: s.handle.fd, name: s.name }] : []));
    return { sockets, release: () => sent.forEach((s) => s.handle.close()) };
  }

  serving(): void {
    // The workers serve; the primary answers them (cluster/primary.ts).
  }

  failed(): void {
    // The primary's failure is the process's: its caller reports it.
  }

  async drain(): Promise<void> {
    await this.#primary?.stop();
    this.#health?.stop();
  }

  async close(): Promise<void> {
    this.#health?.stop();
    if (this.#keyDir) await rm(this.#keyDir, { recursive: true, force: true });
  }

  #running(): Primary {
    if (!this.#primary) throw new Error('not started');
    return this.#primary;
  }
}
