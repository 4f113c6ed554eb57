// Zero-downtime upgrade (SIGUSR2), both sides.
//
// The running process starts a successor with the same command line and hands it the
// listening sockets as descriptors 3, 4, ... with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID,
// the protocol of systemd's socket activation, so the successor takes them like any
// inherited socket: no port is closed and bound again. The successor reports over an IPC
// channel once it serves (listeners open, workers running, pid file written), or why it
// could not start. Only then does the old process stop accepting and drain; if the
// successor fails, the old one keeps serving and logs why.

import { spawn } from 'node:child_process';
import { WORKER_ENV_NAMES } from './cluster/worker-env.js';

export interface HandedSocket {
  fd: number;
  /** The listener's name (LISTEN_FDNAMES). */
  name: string;
}

type SuccessorMessage = { postern: 'upgraded'; pid: number } | { postern: 'upgrade_failed'; message: string };

export class UpgradeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpgradeError';
  }
}

/** How long a successor may take to serve before it is given up (and stopped). */
export const SUCCESSOR_TIMEOUT_MS = 60_000;

/**
 * Starts the successor with `sockets`; resolves with its pid once it serves, rejects with
 * the reason it did not (its own message, its exit status, or the timeout).
 */
export function startSuccessor(sockets: readonly HandedSocket[], timeoutMs = SUCCESSOR_TIMEOUT_MS): Promise<number> {
  const command = [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  // LISTEN_PID must be the successor's own pid, known only once it runs: a shell sets it
  // and execs, keeping its pid (the way systemd-socket-activate does it).
  // This process's own hand-offs (a cluster's private ticket key file, its workers' sockets) are not the successor's.
  const env = { ...process.env };
  for (const name of WORKER_ENV_NAMES) delete env[name];
  const child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', 'postern', ...command], {
    stdio: ['ignore', 'inherit', 'inherit', ...sockets.map((s) => s.fd), 'ipc'],
    env: {
      ...env,
      LISTEN_FDS: String(sockets.length),
      LISTEN_FDNAMES: sockets.map((s) => s.name.replace(/:/g, '_')).join(':'),
      POSTERN_UPGRADE: '1',
    },
  });
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | null, pid = 0) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.removeAllListeners('message');
      if (err) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        reject(err);
      } else {
        // The successor lives on alone: this process may exit without waiting for it.
        if (child.connected) child.disconnect();
        child.unref();
        resolve(pid);
      }
    };
    const timer = setTimeout(() => settle(new UpgradeError(`the new process did not serve within ${timeoutMs} ms; stopped it`)), timeoutMs);
    timer.unref();
    child.on('message', (m: SuccessorMessage) => {
      if (m?.postern === 'upgraded') settle(null, typeof m.pid === 'number' ? m.pid : (child.pid ?? 0));
      else if (m?.postern === 'upgrade_failed') settle(new UpgradeError(`the new process could not start: ${m.message}`));
    });
    child.on('error', (err) => settle(new UpgradeError(`cannot start the new process: ${err.message}`)));
    child.on('exit', (code, signal) =>
      settle(new UpgradeError(`the new process exited before serving (${signal ? `signal ${signal}` : `code ${code}`})`)),
    );
  });
}

/** The successor's side: the channel to the process it takes over from, if it is one. */
export class Predecessor {
  static #taken: Predecessor | null | undefined;

  private constructor() {}

  /** Once per process; the marker is removed so no child of this one takes it for its own. */
  static take(env: NodeJS.ProcessEnv = process.env): Predecessor | null {
    if (Predecessor.#taken !== undefined) return Predecessor.#taken;
    const is = env.POSTERN_UPGRADE === '1' && typeof process.send === 'function';
    delete env.POSTERN_UPGRADE;
    Predecessor.#taken = is ? new Predecessor() : null;
    return Predecessor.#taken;
  }

  /** This process serves: the predecessor may drain. */
  serving(): void {
    this.#send({ postern: 'upgraded', pid: process.pid });
  }

  /** This process cannot start: the predecessor keeps serving and logs `message`. */
  failed(message: string): void {
    this.#send({ postern: 'upgrade_failed', message });
  }

  #send(m: SuccessorMessage): void {
    if (!process.send || !process.connected) return;
    process.send(m, undefined, undefined, () => {
      if (process.connected) process.disconnect();
    });
  }
}
