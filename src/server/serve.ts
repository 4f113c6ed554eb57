// `postern run` (and `demo`) in one process, or as one worker of a cluster (POSTERN_WORKER
// set by the primary, serve-primary.ts). Runs until SIGTERM/SIGINT (drain); SIGHUP reloads
// the config file; SIGUSR2 hands the listening sockets to a successor and drains.

import { AggregatorRegistry } from 'prom-client';
import { loadConfig, type Config } from '../config/index.js';
import { createLogger } from '../observe/logger.js';
import { buildInfoMetric, Metrics } from '../observe/metrics.js';
import { posternVersion } from '../observe/build-info.js';
import { planReload } from '../config/reload-plan.js';
import { logConfigWarnings } from './config-warnings.js';
import { proxySources } from '../observe/status-server.js';
import { ClusterWindowCounter } from '../state/cluster-windows.js';
import { IpcSessionStore } from './cluster/tls-sessions.js';
import { onPrimaryMessage, RemoteAdmission, send, tlsSessionChannel, windowChannel } from './cluster/worker.js';
import { describeError } from './describe.js';
import { InheritedSockets } from './inherited-sockets.js';
import { removePidFile, writePidFile } from './pid-file.js';
import { Postern } from './postern.js';
import { dropTo, resolveAccount, ticketKeyFile, type Account } from './privileges.js';
import { ReloadReport } from './reload-report.js';
import { redisTicketKeys, SharedState } from './shared-state.js';
import { SignalGate } from './signals.js';
import { StatusListener, takeMetricsSocket } from './status-listener.js';
import { TlsSessionHost } from './tls-session-host.js';
import { Predecessor, startSuccessor, type HandedSocket } from './upgrade.js';

export interface ServeResult {
  code: number;
  /** The one line for stderr when code is 1. */
  error?: string;
}

export interface ServeOptions {
  /** Reloaded on SIGHUP; null: nothing to reload (demo without a file). */
  file: string | null;
  /** `--pid-file`: written once serving, removed at exit while it still names this process. */
  pidFile?: string | null;
  /** The process this one takes over from (SIGUSR2 upgrade), told when this one serves. */
  predecessor?: Predecessor | null;
  onStarted?: (p: Postern) => void;
}

/** One process, or (with POSTERN_WORKER set by the primary) one cluster worker. */
export async function serve(config: Config, opts: ServeOptions): Promise<ServeResult> {
  const worker = process.env.POSTERN_WORKER === '1';
  config = withSharedTicketKeys(config);
  const signals = new SignalGate();
  const logger = createLogger(config.log);
  if (!worker) logConfigWarnings(config, logger);
  const predecessor = opts.predecessor ?? null;
  // A worker's pid is not the service's: its primary writes the pid file.
  const pidFile = worker ? null : (opts.pidFile ?? null);
  const failed = (error: string): ServeResult => {
    if (worker) send({ postern: 'failed', message: error });
    predecessor?.failed(error);
    return { code: 1, error };
  };
  let account: Account | null;
  try {
    account = config.run_as ? resolveAccount(config.run_as) : null;
  } catch (err) {
    return failed(describeError(err));
  }
  const sockets = worker ? InheritedSockets.fromJson(process.env.POSTERN_LISTEN_SOCKETS) : InheritedSockets.fromEnv();
  const metrics = new Metrics({ processMetrics: true });
  // The primary keeps a cluster's shared state; a single process keeps its own.
  const shared = worker ? null : await SharedState.open(config, { logger, registry: metrics.registry });
  const tickets = await redisTicketKeys(config, shared?.link ?? null, logger);
  // The host's TLS session cache: here, or the primary's (asked over IPC).
  const tlsHost = worker ? null : await TlsSessionHost.open(config, { link: shared?.link ?? null, logger, registry: metrics.registry });
  const ipcSessions = worker && config.tls && config.tls.session_cache.size > 0 ? new IpcSessionStore(tlsSessionChannel()) : null;
  const closeState = async () => {
    ipcSessions?.close();
    await tickets.close();
    await shared?.close();
  };
  const postern = new Postern(config, {
    logger,
    metrics,
    admission: shared?.admission ?? new RemoteAdmission(),
    windows: shared?.windows ?? new ClusterWindowCounter(windowChannel()),
    sockets,
    ticketKeys: tickets.backing,
    sessionStore: ipcSessions ?? tlsHost?.cache,
  });
  try {
    await postern.start();
  } catch (err) {
    await closeState();
    return failed(describeError(err));
  }
  const sources = proxySources(postern);
  const status = worker
    ? null
    : new StatusListener(logger, { ...sources, details: () => shared?.details() ?? [], tlsSessionCache: () => tlsHost?.snapshot() ?? null });
  try {
    await status?.apply(config, worker ? null : takeMetricsSocket(config, sockets));
  } catch (err) {
    await postern.stop(0);
    await closeState();
    return failed(`metrics listener ${config.metrics!.listen.text}: ${describeError(err)}`);
  }
  if (!worker) {
    const unused = sockets.closeRest();
    if (unused.length) logger.warn({ sockets: unused }, `${unused.length} inherited socket(s) match no listener: closed`);
  }
  try {
    if (pidFile) writePidFile(pidFile);
    if (account) dropTo(account, [ticketKeyFile(config), config.tls?.session_cache.file ?? null, pidFile], logger);
  } catch (err) {
    await postern.stop(0);
    await status?.close();
    await closeState();
    return failed(describeError(err));
  }
  opts.onStarted?.(postern);
  // The single process tells how a reload went; a worker tells its primary, which tells it for all.
  const report = worker ? null : new ReloadReport(logger, metrics.registry);
  if (!worker) buildInfoMetric(metrics.registry, posternVersion());
  let reloading: Promise<void> = Promise.resolve();
  const startedWith = postern.config;
  /** SIGHUP (or the primary's `reload`): one at a time, each reported once. */
  const reload = (id?: number) => {
    reloading = reloading.then(async () => {
      const error = opts.file ? await reloadFrom(opts.file) : null;
      if (worker && id !== undefined) send({ postern: 'reloaded', id, error });
    });
  };
  /** Loads and applies `file`; returns why it failed, or null. */
  const reloadFrom = async (file: string): Promise<string | null> => {
    let next: Config;
    try {
      next = withSharedTicketKeys(loadConfig(file));
    } catch (err) {
      // An invalid new config is refused; the old one stays in force.
      if (report) report.failed(describeError(err), null);
      else logger.error({ event: 'reload_failed', err: describeError(err) }, 'reload refused: invalid config');
      return describeError(err);
    }
    const plan = planReload(postern.config, next, startedWith);
    try {
      logger.level = next.log.level;
      await postern.reload(next);
      await status?.apply(next);
    } catch (err) {
      if (report) report.failed(describeError(err), plan);
      else logger.error({ event: 'reload_failed', err: describeError(err) }, 'reload failed');
      return describeError(err);
    }
    report?.applied(plan);
    return null;
  };
  return new Promise<ServeResult>((resolve) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal: why }, 'draining');
      void postern.stop().then(async () => {
        await status?.close();
        // Only a process that served saves its sessions: one that failed to start leaves the file alone.
        await tlsHost?.save();
        await closeState();
        if (pidFile) removePidFile(pidFile);
        logger.info('stopped');
        logger.flush();
        resolve({ code: 0 });
      });
    };
    if (worker) {
      serveAsWorker(postern, reload, stop);
      signals.bind({ stop, reload: null, upgrade: null });
      send({ postern: 'ready' });
      return;
    }
    let upgrading = false;
    const upgrade = () => {
      if (upgrading || stopping) return;
      upgrading = true;
      const handed: HandedSocket[] = postern.listeners.flatMap((l) => {
        const fd = l.fd();
        return fd === null ? [] : [{ fd, name: l.cfg.name }];
      });
      const metricsSocket = status?.handed();
      if (metricsSocket) handed.push(metricsSocket);
      logger.info({ event: 'upgrade', sockets: handed.length }, 'SIGUSR2: starting a new process with the listening sockets');
      // The successor reads the session cache file as it starts.
      (tlsHost?.save() ?? Promise.resolve()).then(() => startSuccessor(handed)).then(
        (pid) => {
          logger.info({ event: 'upgrade', pid }, `new process ${pid} serves; this one stops accepting and drains`);
          // The successor answers scrapes from now on: a draining process would say "not ready".
          // Scrapes under way are answered first, while this process still serves.
          void (status?.close() ?? Promise.resolve()).then(() => stop('upgrade'));
        },
        (err: unknown) => {
          upgrading = false;
          logger.error({ event: 'upgrade_failed', err: describeError(err) }, 'upgrade failed; this process keeps serving');
        },
      );
    };
    signals.bind({ stop, reload: () => reload(), upgrade });
    predecessor?.serving();
  });
}

/** A worker's side of the cluster: status to the primary, reload/stop and socket requests from it. */
function serveAsWorker(postern: Postern, reload: (id: number) => void, stop: (why: string) => void): void {
  const sources = proxySources(postern);
  // prom-client answers the primary's metrics requests only once a worker has built
  // an AggregatorRegistry (that installs its message listener).
  AggregatorRegistry.setRegistries([postern.metrics.registry]);
  new AggregatorRegistry();
  const push = () => send({ postern: 'status', sessions: sources.sessions(), backends: sources.backends(), ready: sources.ready() });
  push();
  setInterval(push, 1000).unref();
  onPrimaryMessage((m) => {
    if (m.postern === 'reload') reload(m.id);
    else if (m.postern === 'stop') stop('primary');
    else if (m.postern === 'sockets?') sendSockets(postern);
  });
  // The primary is gone (killed): drain rather than serve unsupervised.
  process.on('disconnect', () => stop('primary gone'));
}

/** For an upgrade: each listening socket to the primary, which has none of its own to hand over. */
function sendSockets(postern: Postern): void {
  const open = postern.listeners.filter((l) => l.handle() !== null);
  open.forEach((l, index) => {
    if (process.send && process.connected) process.send({ postern: 'socket', name: l.cfg.name, index, count: open.length }, l.handle() as never);
  });
  if (open.length === 0) send({ postern: 'socket', name: '', index: -1, count: 0 });
}

/**
 * Cluster workers must issue and accept the same session tickets, or a client resuming on
 * another worker gets a full handshake. With no ticket_keys.file configured, the primary
 * makes a private one (0700 directory) that only its workers share.
 */
export function withSharedTicketKeys(config: Config): Config {
  const file = process.env.POSTERN_TICKET_KEY_FILE;
  if (!file || !config.tls || config.tls.ticket_keys.file) return config;
  return { ...config, tls: { ...config.tls, ticket_keys: { ...config.tls.ticket_keys, file } } };
}

