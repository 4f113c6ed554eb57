// The metrics listener (`metrics.listen`), kept in step with the config across reloads.

import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { startStatusServer, type StatusServer, type StatusSources } from '../observe/status-server.js';

export class StatusListener {
  #server: StatusServer | null = null;
  #at: string | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly sources: StatusSources,
  ) {}

  async apply(c: Config): Promise<void> {
    const at = c.metrics?.listen.text;
    if (at === this.#at && (this.#server || !at)) return;
    await this.close();
    if (!c.metrics) return;
    this.#server = await startStatusServer({ host: c.metrics.listen.host, port: c.metrics.listen.port }, this.sources);
    this.#at = at;
    this.logger.info({ address: this.#server.address() }, `metrics on ${c.metrics.listen.text}`);
  }

  async close(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    this.#at = undefined;
    await s?.close();
  }
}
