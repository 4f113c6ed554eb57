// `postern run` with `workers: N`: the cluster primary. It forks and supervises the
// workers, holds the per-IP counts and window counts they share (itself, or through Redis),
// serves the metrics listener with their aggregated metrics, and acts on the signals.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AggregatorRegistry, Registry } from 'prom-client';
import { loadConfig, type Config } from '../config/index.js';
import { planReload } from '../config/reload-plan.js';
import { posternVersion } from '../observe/build-info.js';
import { createLogger } from '../observe/logger.js';
import { logConfigWarnings } from './config-warnings.js';
import { buildInfoMetric } from '../observe/metrics.js';
import { Primary } from './cluster/primary.js';
import { describeError } from './describe.js';
import { InheritedSockets } from './inherited-sockets.js';
import { removePidFile, writePidFile } from './pid-file.js';
import { dropTo, resolveAccount, ticketKeyFile, type Account } from './privileges.js';
import type { ServeOptions, ServeResult } from './serve.js';
import { ReloadReport } from './reload-report.js';
import { SharedState } from './shared-state.js';
import { SignalGate } from './signals.js';
import { StatusListener, takeMetricsSocket } from './status-listener.js';
import { TlsSessionHost } from './tls-session-host.js';
import { startSuccessor } from './upgrade.js';

export async function servePrimary(config: Config, file: string, opts: Omit<ServeOptions, 'file' | 'onStarted'> = {}): Promise<ServeResult> {
  const signals = new SignalGate();
  const predecessor = opts.predecessor ?? null;
  const failed = (error: string): ServeResult => {
    predecessor?.failed(error);
    return { code: 1, error };
  };
  let account: Account | null;
  try {
    account = config.run_as ? resolveAccount(config.run_as) : null;
  } catch (err) {
    return failed(describeError(err));
  }
  const logger = createLogger(config.log);
  logConfigWarnings(config, logger);
  // Sockets handed over (systemd, a predecessor): the workers listen on those that match a
  // listener, through node:cluster, which opens them here and shares them.
  const inherited = InheritedSockets.fromEnv();
  const matched = new InheritedSockets(
    config.listeners.flatMap((l) => {
      const fd = inherited.take(l.listen, l.name);
      return fd === null ? [] : [{ fd, name: l.name, host: l.listen.host, port: l.listen.port }];
    }),
  );
  // The metrics socket is the primary's own: it serves the metrics listener itself.
  const metricsFd = takeMetricsSocket(config, inherited);
  const unused = inherited.closeRest();
  if (unused.length) logger.warn({ sockets: unused }, `${unused.length} inherited socket(s) match no listener: closed`);
  let keyDir: string | null = null;
  // Workers share ticket keys through a private file, unless a file or Redis is configured.
  if (config.tls?.session_tickets && !config.tls.ticket_keys.file && !config.state.redis) {
    keyDir = await mkdtemp(join(tmpdir(), 'postern-tickets-'));
    process.env.POSTERN_TICKET_KEY_FILE = join(keyDir, 'ticket-keys');
  }
  const registry = new Registry();
  // Told once for the service: never summed over workers.
  const report = new ReloadReport(logger, registry);
  buildInfoMetric(registry, posternVersion());
  const shared = await SharedState.open(config, { logger, registry });
  // The host's TLS session cache, which the workers ask over IPC.
  const tlsHost = await TlsSessionHost.open(config, { link: shared.link, logger, registry });
  const primary = new Primary({
    workers: config.workers,
    limits: config.limits,
    logger,
    stopTimeoutMs: config.shutdown_grace + 5000,
    admission: shared.admission,
    windows: shared.windows,
    workerEnv: matched.size ? { POSTERN_LISTEN_SOCKETS: matched.toJson() } : {},
    tlsSessions: tlsHost?.cache ?? null,
  });
  // Counters and gauges summed over the workers by prom-client's cluster support, and the
  // primary's own (Redis's state).
  const aggregate = new AggregatorRegistry();
  const status = new StatusListener(logger, {
    metrics: {
      registry: {
        metrics: async () => (await aggregate.clusterMetrics()) + (await registry.metrics()),
        contentType: aggregate.contentType,
      },
    },
    sessions: () => primary.sessions(),
    backends: () => primary.backends(),
    ready: () => primary.ready(),
    details: () => shared.details(),
    tlsSessionCache: () => tlsHost?.snapshot() ?? null,
  });
  const cleanUp = async () => {
    await status.close();
    await shared.close();
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  };
  try {
    await primary.start();
    await status.apply(config, metricsFd);
    if (opts.pidFile) writePidFile(opts.pidFile);
    // Workers drop root themselves once they listen; the primary once they all do.
    if (account) {
      dropTo(account, [keyDir && join(keyDir, 'ticket-keys'), ticketKeyFile(config), config.tls?.session_cache.file ?? null, opts.pidFile ?? null], logger);
    }
  } catch (err) {
    await primary.stop();
    await cleanUp();
    return failed(describeError(err));
  }
  logger.info({ workers: config.workers }, `${config.workers} workers running`);
  return new Promise<ServeResult>((resolve) => {
    let stopping = false;
    let upgrading = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'draining');
      void primary.stop().then(async () => {
        // Only a primary that served saves its sessions: one that failed to start leaves the file alone.
        await tlsHost?.save();
        await cleanUp();
        if (opts.pidFile) removePidFile(opts.pidFile);
        logger.info('stopped');
        logger.flush();
        resolve({ code: 0 });
      });
    };
    const upgrade = async () => {
      if (upgrading || stopping) return;
      upgrading = true;
      logger.info({ event: 'upgrade' }, 'SIGUSR2: starting a new process with the listening sockets');
      let sockets: Awaited<ReturnType<Primary['listeningSockets']>> = [];
      try {
        sockets = await primary.listeningSockets();
        const handed = sockets.flatMap((s) => (typeof s.handle.fd === 'number' && s.handle.fd >= 0 ? [{ fd: s.handle.fd, name: s.name }] : []));
        const metricsSocket = status.handed();
        if (metricsSocket) handed.push(metricsSocket);
        // The successor reads the session cache file as it starts.
        await tlsHost?.save();
        const pid = await startSuccessor(handed);
        logger.info({ event: 'upgrade', pid }, `new process ${pid} serves; this one stops accepting and drains`);
        // The successor answers scrapes from now on; those under way are answered first.
        await status.close();
        stop('upgrade');
      } catch (err) {
        upgrading = false;
        logger.error({ event: 'upgrade_failed', err: describeError(err) }, 'upgrade failed; this process keeps serving');
      } finally {
        for (const s of sockets) s.handle.close();
      }
    };
    // SIGHUP: checked here, then applied by every worker; told once, for all of them.
    let inForce = config;
    let reloading: Promise<void> = Promise.resolve();
    const reloadOnce = async () => {
      let next: Config;
      try {
        next = loadConfig(file);
      } catch (err) {
        report.failed(describeError(err), null);
        return;
      }
      const plan = planReload(inForce, next, config);
      logger.level = next.log.level;
      const failures = await primary.reload(next.limits, next.shutdown_grace + 5000);
      try {
        await status.apply(next);
      } catch (err) {
        failures.push(`metrics listener ${next.metrics?.listen.text ?? ''}: ${describeError(err)}`);
      }
      // Workers that applied it run the new config: the next reload compares with that.
      inForce = next;
      if (failures.length) report.failed(failures.join('; '), plan);
      else report.applied(plan);
    };
    signals.bind({
      stop,
      reload: () => {
        reloading = reloading.then(reloadOnce);
      },
      upgrade: () => void upgrade(),
    });
    predecessor?.serving();
  });
}
