// `postern run` (and `demo`): one process, a cluster worker, or the cluster primary.
// Runs until SIGTERM/SIGINT (drain); SIGHUP reloads the config file.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AggregatorRegistry } from 'prom-client';
import { loadConfig, type Config } from '../config/index.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { proxySources, startStatusServer, type StatusServer, type StatusSources } from '../observe/status-server.js';
import { Primary } from './cluster/primary.js';
import { RemoteAdmission, onPrimaryMessage, send } from './cluster/worker.js';
import { describeError } from './describe.js';
import { Postern } from './postern.js';

export interface ServeResult {
  code: number;
  /** The one line for stderr when code is 1. */
  error?: string;
}

export interface ServeOptions {
  /** Reloaded on SIGHUP; null: nothing to reload (demo without a file). */
  file: string | null;
  onStarted?: (p: Postern) => void;
}

/** Keeps the metrics listener in step with the config across reloads. */
class StatusListener {
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

/**
 * SIGTERM/SIGINT stop, SIGHUP reloads. Installed before anything starts; signals that
 * arrive before `bind` wait for it. A worker ignores SIGHUP (`reload` null): its primary
 * validates the file once and tells every worker.
 */
class SignalGate {
  #stop: ((signal: string) => void) | null = null;
  #reload: (() => void) | null = null;
  #pendingStop: string | null = null;
  #pendingReload = false;

  constructor(handleHup: boolean) {
    process.on('SIGTERM', () => this.#onStop('SIGTERM'));
    process.on('SIGINT', () => this.#onStop('SIGINT'));
    process.on('SIGHUP', () => {
      if (!handleHup) return;
      if (this.#reload) this.#reload();
      else this.#pendingReload = true;
    });
  }

  #onStop(signal: string): void {
    if (this.#stop) this.#stop(signal);
    else this.#pendingStop ??= signal;
  }

  bind(stop: (signal: string) => void, reload: (() => void) | null): void {
    this.#stop = stop;
    this.#reload = reload;
    if (this.#pendingReload && reload) reload();
    if (this.#pendingStop) stop(this.#pendingStop);
  }
}

/** One process, or (with POSTERN_WORKER set by the primary) one cluster worker. */
export async function serve(config: Config, opts: ServeOptions): Promise<ServeResult> {
  const worker = process.env.POSTERN_WORKER === '1';
  config = withSharedTicketKeys(config);
  // Handlers first: a signal that arrives while starting must not hit Node's default
  // action (SIGHUP would kill the process). Early ones are acted on once started.
  const signals = new SignalGate(!worker);
  const logger = createLogger(config.log);
  const postern = new Postern(config, { logger, admission: worker ? new RemoteAdmission() : undefined });
  try {
    await postern.start();
  } catch (err) {
    if (worker) send({ postern: 'failed', message: describeError(err) });
    return { code: 1, error: describeError(err) };
  }
  const status = worker ? null : new StatusListener(logger, proxySources(postern));
  try {
    await status?.apply(config);
  } catch (err) {
    await postern.stop(0);
    return { code: 1, error: `metrics listener ${config.metrics!.listen.text}: ${describeError(err)}` };
  }
  opts.onStarted?.(postern);
  const reload = () => {
    if (!opts.file) return;
    let next: Config;
    try {
      next = withSharedTicketKeys(loadConfig(opts.file));
    } catch (err) {
      // An invalid new config is refused; the old one stays in force.
      logger.error({ event: 'reload_failed', err: describeError(err) }, 'reload refused: invalid config');
      return;
    }
    void postern
      .reload(next)
      .then(() => status?.apply(next))
      .catch((err: unknown) => logger.error({ event: 'reload_failed', err: describeError(err) }, 'reload failed'));
  };
  return new Promise<ServeResult>((resolve) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal: why }, 'draining');
      void postern.stop().then(async () => {
        await status?.close();
        logger.info('stopped');
        logger.flush();
        resolve({ code: 0 });
      });
    };
    if (worker) {
      // The primary's view of this worker: live sessions and backends, every second.
      const sources = proxySources(postern);
      // prom-client answers the primary's metrics requests only once a worker has built
      // an AggregatorRegistry (that installs its message listener).
      AggregatorRegistry.setRegistries([postern.metrics.registry]);
      new AggregatorRegistry();
      const push = () => send({ postern: 'status', sessions: sources.sessions(), backends: sources.backends(), ready: sources.ready() });
      push();
      setInterval(push, 1000).unref();
      onPrimaryMessage((m) => {
        if (m.postern === 'reload') reload();
        else if (m.postern === 'stop') stop('primary');
      });
      // The primary is gone (killed): drain rather than serve unsupervised.
      process.on('disconnect', () => stop('primary gone'));
      signals.bind(stop, null);
      send({ postern: 'ready' });
    } else {
      signals.bind(stop, reload);
    }
  });
}

/** The cluster primary: forks `config.workers` workers and supervises them. */
/**
 * Cluster workers must issue and accept the same session tickets, or a client resuming on
 * another worker gets a full handshake. With no ticket_keys.file configured, the primary
 * makes a private one (0700 directory) that only its workers share.
 */
function withSharedTicketKeys(config: Config): Config {
  const file = process.env.POSTERN_TICKET_KEY_FILE;
  if (!file || !config.tls || config.tls.ticket_keys.file) return config;
  return { ...config, tls: { ...config.tls, ticket_keys: { ...config.tls.ticket_keys, file } } };
}

export async function servePrimary(config: Config, file: string): Promise<ServeResult> {
  const signals = new SignalGate(true);
  let keyDir: string | null = null;
  if (config.tls?.session_tickets && !config.tls.ticket_keys.file) {
    keyDir = await mkdtemp(join(tmpdir(), 'postern-tickets-'));
    process.env.POSTERN_TICKET_KEY_FILE = join(keyDir, 'ticket-keys');
  }
  const logger = createLogger(config.log);
  const primary = new Primary({
    workers: config.workers,
    limits: config.limits,
    logger,
    reloadCheck: () => {
      current = loadConfig(file);
      return current.limits;
    },
    stopTimeoutMs: config.shutdown_grace + 5000,
  });
  let current = config;
  // Counters and gauges summed over the workers by prom-client's cluster support.
  const aggregate = new AggregatorRegistry();
  const status = new StatusListener(logger, {
    metrics: { registry: { metrics: () => aggregate.clusterMetrics(), contentType: aggregate.contentType } },
    sessions: () => primary.sessions(),
    backends: () => primary.backends(),
    ready: () => primary.ready(),
  });
  try {
    await primary.start();
    await status.apply(config);
  } catch (err) {
    await primary.stop();
    await status.close();
    return { code: 1, error: describeError(err) };
  }
  logger.info({ workers: config.workers }, `${config.workers} workers running`);
  return new Promise<ServeResult>((resolve) => {
    let stopping = false;
    signals.bind(
      (signal) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'draining');
        void primary.stop().then(async () => {
          await status.close();
          if (keyDir) await rm(keyDir, { recursive: true, force: true });
          logger.info('stopped');
          logger.flush();
          resolve({ code: 0 });
        });
      },
      () => {
        primary.reload();
        void status.apply(current).catch((err: unknown) => logger.error({ err: describeError(err) }, 'metrics listener'));
      },
    );
  });
}
