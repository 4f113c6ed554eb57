// `postern run` (and `demo`): one serve path for the three roles a process can have
// (role.ts): a single process, a cluster's primary (`workers: N`), or one of its workers.
// Runs until SIGTERM/SIGINT (drain); SIGHUP reloads the config file; SIGUSR2 hands the
// listening sockets to a successor and drains. The host's part (pid file, metrics listener,
// reload report, upgrade) is done by the single process or the primary, never a worker.

import cluster from 'node:cluster';
import type { Config } from '../config/types.js';
import { planReload } from '../config/reload-plan.js';
import { createLogger } from '../observe/logger.js';
import { logConfigWarnings } from './config-warnings.js';
import { describeError } from './describe.js';
import { Host } from './host.js';
import { removePidFile, writePidFile } from './pid-file.js';
import type { Postern } from './postern.js';
import { dropTo, resolveAccount, ticketKeyFile, type Account } from './privileges.js';
import { PrimaryRole } from './role-primary.js';
import { ProcessRole } from './role-process.js';
import type { Role } from './role.js';
import { SignalGate } from './signals.js';
import { Predecessor, startSuccessor } from './upgrade.js';

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
  /** `workers` > 1 makes this process a cluster primary (`run`; `demo` is always one process). */
  cluster?: boolean;
  /** A single process or a worker: its proxy, once it serves. */
  onStarted?: (p: Postern) => void;
}

/** The role this process has: a worker when forked by a primary, a primary with `workers` > 1. */
function roleFor(config: Config, opts: ServeOptions, logger: ReturnType<typeof createLogger>): Role {
  if (cluster.isWorker) return new ProcessRole('worker', config, logger, opts.onStarted);
  if (config.workers > 1 && opts.cluster && opts.file) return new PrimaryRole(config, logger);
  return new ProcessRole('single', config, logger, opts.onStarted);
}

export async function serve(config: Config, opts: ServeOptions): Promise<ServeResult> {
  const signals = new SignalGate();
  const logger = createLogger(config.log);
  const role = roleFor(config, opts, logger);
  const isHost = role.name !== 'worker';
  if (isHost) logConfigWarnings(config, logger);
  const predecessor = opts.predecessor ?? null;
  // A worker's pid is not the service's: its primary writes the pid file.
  const pidFile = isHost ? (opts.pidFile ?? null) : null;
  const failed = (error: string): ServeResult => {
    role.failed(error);
    predecessor?.failed(error);
    return { code: 1, error };
  };
  /**
   * A start that failed: the failure is told first, then what was opened closes. A worker's
   * listeners close through its primary, and that can make another worker fail too: the
   * primary must hear this cause before that consequence.
   */
  const failedAfterStart = async (err: unknown): Promise<ServeResult> => {
    const result = failed(describeError(err));
    await role.drain(0);
    await role.close();
    await host?.close();
    return result;
  };
  let account: Account | null;
  try {
    account = config.run_as ? resolveAccount(config.run_as) : null;
  } catch (err) {
    return failed(describeError(err));
  }
  const host = isHost ? await Host.open(role.config, logger, role.registry) : null;
  try {
    await role.start(host);
  } catch (err) {
    return failedAfterStart(err);
  }
  try {
    await host?.serveStatus(role.config, role.view());
    if (pidFile) writePidFile(pidFile);
    // Workers drop root themselves once they listen; the primary once they all do.
    const c = role.config;
    if (account) dropTo(account, [ticketKeyFile(c), c.tls?.session_cache.file ?? null, pidFile, ...role.files()], logger);
  } catch (err) {
    return failedAfterStart(err);
  }
  const startedWith = role.config;
  let reloading: Promise<string | null> = Promise.resolve(null);
  /** Loads and applies the config file; returns why it failed, or null. The host reports it once. */
  const reloadFrom = async (file: string): Promise<string | null> => {
    let next: Config;
    try {
      // Loaded here, not at start: a cluster worker starts from its primary's config and needs
      // the YAML parser and the schema only once it is told to reload.
      const { loadConfig } = await import('../config/load.js');
      next = role.prepare(loadConfig(file));
    } catch (err) {
      // An invalid new config is refused; the old one stays in force.
      host?.report.failed(describeError(err), null);
      return describeError(err);
    }
    const plan = planReload(role.config, next, startedWith);
    logger.level = next.log.level;
    const failures = await role.apply(next);
    try {
      await host?.status?.apply(next);
    } catch (err) {
      failures.push(`metrics listener ${next.metrics?.listen.text ?? ''}: ${describeError(err)}`);
    }
    if (failures.length) host?.report.failed(failures.join('; '), plan);
    else host?.report.applied(plan);
    return failures.length ? failures.join('; ') : null;
  };
  /** SIGHUP (or the primary's `reload`): one at a time, each reported once. */
  const reload = (): Promise<string | null> => {
    const file = opts.file;
    reloading = reloading.then(() => (file ? reloadFrom(file) : null));
    return reloading;
  };
  return new Promise<ServeResult>((resolve) => {
    let stopping = false;
    let upgrading = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      role.logger.info({ signal: why }, 'draining');
      void role.drain().then(async () => {
        await host?.closeStatus();
        // Only a host that served saves its sessions: one that failed to start leaves the file alone.
        await host?.tlsSessions?.save();
        await role.close();
        await host?.close();
        if (pidFile) removePidFile(pidFile);
        role.logger.info('stopped');
        logger.flush();
        resolve({ code: 0 });
      });
    };
    const upgrade = async (h: Host) => {
      if (upgrading || stopping) return;
      upgrading = true;
      logger.info({ event: 'upgrade' }, 'SIGUSR2: starting a new process with the listening sockets');
      let release = () => undefined as void;
      try {
        const taken = await role.listening();
        release = taken.release;
        const handed = [...taken.sockets];
        const metricsSocket = h.status?.handed();
        if (metricsSocket) handed.push(metricsSocket);
        // The successor reads the session cache file as it starts.
        await h.tlsSessions?.save();
        const pid = await startSuccessor(handed);
        logger.info({ event: 'upgrade', pid }, `new process ${pid} serves; this one stops accepting and drains`);
        // The successor answers scrapes from now on: a draining process would say "not ready".
        // Scrapes under way are answered first, while this process still serves.
        await h.closeStatus();
        stop('upgrade');
      } catch (err) {
        upgrading = false;
        logger.error({ event: 'upgrade_failed', err: describeError(err) }, 'upgrade failed; this process keeps serving');
      } finally {
        release();
      }
    };
    // A worker is told to reload, upgrade and stop by its primary (role.serving).
    signals.bind({ stop, reload: host ? () => void reload() : null, upgrade: host ? () => void upgrade(host) : null });
    role.serving({ reload, stop });
    predecessor?.serving();
  });
}
