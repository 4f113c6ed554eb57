// What a host has once, whoever serves it (a single process, or a cluster's primary for its
// workers): the sockets it inherited, the shared state (per-IP counts, windows, Redis), the
// TLS session cache, the reload report, the build info metric and the metrics listener.

import type { Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import { posternVersion } from '../observe/build-info.js';
import type { Logger } from '../observe/logger.js';
import { buildInfoMetric } from '../observe/metrics.js';
import type { StatusSources } from '../observe/status-server.js';
import { describeError } from './describe.js';
import { InheritedSockets } from './inherited-sockets.js';
import { ReloadReport } from './reload-report.js';
import { SharedState } from './shared-state.js';
import { StatusListener, takeMetricsSocket } from './status-listener.js';
import { TlsSessionHost } from './tls-session-host.js';

/** What the metrics listener serves about the process(es) that serve the host. */
export type ServedView = Omit<StatusSources, 'details' | 'tlsSessionCache'>;

export class Host {
  #status: StatusListener | null = null;

  private constructor(
    readonly sockets: InheritedSockets,
    readonly shared: SharedState,
    readonly tlsSessions: TlsSessionHost | null,
    readonly report: ReloadReport,
    private readonly logger: Logger,
  ) {}

  /** `registry`: where the host's metrics go (the single process's, or the primary's own). */
  static async open(config: Config, logger: Logger, registry: Registry): Promise<Host> {
    // Sockets handed over (systemd, a predecessor), matched to listeners as they open.
    const sockets = InheritedSockets.fromEnv();
    const report = new ReloadReport(logger, registry);
    buildInfoMetric(registry, posternVersion());
    const shared = await SharedState.open(config, { logger, registry });
    const tlsSessions = await TlsSessionHost.open(config, { link: shared.link, logger, registry });
    return new Host(sockets, shared, tlsSessions, report, logger);
  }

  /** Once the listeners have taken their inherited sockets: the metrics listener, and the unused sockets closed. */
  async serveStatus(config: Config, view: ServedView): Promise<void> {
    this.#status = new StatusListener(this.logger, {
      ...view,
      details: () => this.shared.details(),
      tlsSessionCache: () => this.tlsSessions?.snapshot() ?? null,
    });
    try {
      await this.#status.apply(config, takeMetricsSocket(config, this.sockets));
    } catch (err) {
      throw new Error(`metrics listener ${config.metrics!.listen.text}: ${describeError(err)}`);
    }
    const unused = this.sockets.closeRest();
    if (unused.length) this.logger.warn({ sockets: unused }, `${unused.length} inherited socket(s) match no listener: closed`);
  }

  get status(): StatusListener | null {
    return this.#status;
  }

  /** Stops answering scrapes (a successor answers them, or the host is stopping). */
  async closeStatus(): Promise<void> {
    await this.#status?.close();
  }

  async close(): Promise<void> {
    await this.closeStatus();
    await this.shared.close();
  }
}
