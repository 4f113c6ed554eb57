// The metrics listener (`metrics.listen`), kept in step with the config across reloads.
// Its socket is handed over on SIGUSR2 like the SMTP listeners' (a successor binding the
// same address itself would meet EADDRINUSE), under the name METRICS_SOCKET_NAME.

import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { startStatusServer, type StatusServer, type StatusSources } from '../observe/status-server.js';
import type { InheritedSockets } from './inherited-sockets.js';

/**
 * LISTEN_FDNAMES entry of the metrics socket on an upgrade. "+" is not allowed in a
 * listener name, so it never stands for an SMTP listener.
 */
export const METRICS_SOCKET_NAME = '+metrics';

/** The inherited socket bound to `metrics.listen` (a predecessor's, or systemd's), taken from `inherited`. */
export function takeMetricsSocket(c: Config, inherited: InheritedSockets): number | null {
  return c.metrics ? inherited.take(c.metrics.listen, METRICS_SOCKET_NAME) : null;
}

export class StatusListener {
  #server: StatusServer | null = null;
  #at: string | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly sources: StatusSources,
  ) {}

  /**
   * Opens, moves or closes the listener as `c.metrics` says. At start, `fd` is a socket
   * already bound to `metrics.listen` (takeMetricsSocket), used instead of binding.
   */
  async apply(c: Config, fd: number | null = null): Promise<void> {
    const at = c.metrics?.listen.text;
    if (at === this.#at && (this.#server || !at)) return;
    await this.close();
    if (!c.metrics) return;
    const { host, port } = c.metrics.listen;
    this.#server = await startStatusServer({ host, port }, this.sources, fd);
    this.#at = at;
    const how = fd === null ? '' : ` (inherited socket, fd ${fd})`;
    this.logger.info({ address: this.#server.address(), ...(fd === null ? {} : { fd }) }, `metrics on ${c.metrics.listen.text}${how}`);
  }

  /** The socket to hand to a successor, named for it; null when there is no metrics listener. */
  handed(): { fd: number; name: string } | null {
    const fd = this.#server?.fd() ?? null;
    return fd === null ? null : { fd, name: METRICS_SOCKET_NAME };
  }

  async close(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    this.#at = undefined;
    await s?.close();
  }
}
