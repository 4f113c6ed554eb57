// Process management: every long-lived process the harness starts runs in its own process
// group and is registered here, so one call (also on Ctrl-C, SIGTERM or an uncaught error)
// stops them all. Only groups this harness created are ever signalled.

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<string>;
  /** Set once the process has exited. */
  exitStatus: string | null;
  /** SIGTERM to the group, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<Managed>();
/** Short-lived commands (smtp-source, openssl) still running. */
const transient = new Set<ChildProcess>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * `cmd args` wrapped in `sh -c 'ulimit -n N; exec ...'`: the soft open-files limit raised
 * to the hard one (a plain user can do that; raising the hard limit needs privileges).
 */
export function withNofile(cmd: string, args: string[]): [string, string[]] {
  return ['/bin/sh', ['-c', `ulimit -n ${nofileHardLimit()} 2>/dev/null; exec "$0" "$@"`, cmd, ...args]];
}

/** Starts `cmd` detached (own process group) with stdout and stderr sent to `logFile`. */
export function startManaged(
  name: string,
  cmd: string,
  args: string[],
  logFile: string,
  opts: SpawnOptions & { ipc?: boolean } = {},
): Managed {
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    // BENCH_NODE_FLAGS (bench/profile.ts): flags for every Node contender, `{name}` replaced by its label.
    const nodeFlags = cmd === process.execPath && process.env.BENCH_NODE_FLAGS ? process.env.BENCH_NODE_FLAGS.replaceAll('{name}', name).split(' ') : [];
    const [c, a] = withNofile(cmd, [...nodeFlags, ...args]);
    const { ipc, ...rest } = opts;
    child = spawn(c, a, { ...rest, detached: true, stdio: ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  const pid = child.pid;
  let resolveExit: (s: string) => void = () => {};
  const exited = new Promise<string>((resolve) => {
    resolveExit = resolve;
  });
  const m: Managed = {
    name,
    child,
    pid,
    logFile,
    exited,
    exitStatus: null,
    async stop(graceMs = 3000) {
      if (m.exitStatus === null) {
        killGroup(pid, 'SIGTERM');
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // Children that outlived the leader (nginx workers, cluster workers).
      killGroup(pid, 'SIGKILL');
      running.delete(m);
    },
  };
  child.on('error', (err) => {
    m.exitStatus = `error: ${err.message}`;
    resolveExit(m.exitStatus);
  });
  child.on('exit', (code, signal) => {
    m.exitStatus = signal ?? String(code);
    resolveExit(m.exitStatus);
  });
  running.add(m);
  return m;
}

/** Synchronous: safe to call from an 'exit' handler. */
export function killAllSync(): void {
  for (const m of running) {
    killGroup(m.pid, 'SIGTERM');
    killGroup(m.pid, 'SIGKILL');
  }
  running.clear();
  for (const c of transient) c.kill('SIGKILL');
  transient.clear();
}

export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((m) => m.stop()));
}

/** The last `lines` lines of a log file (for error messages). */
export function tail(file: string, lines = 5): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd();
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function tryConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Waits until every port accepts a TCP connection, or throws after `timeoutMs`. */
export async function waitForPorts(m: Managed, ports: number[], timeoutMs = 10_000, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const port of ports) {
    for (;;) {
      if (m.exitStatus !== null) {
        throw new Error(`${m.name} exited (${m.exitStatus}) before listening: ${tail(m.logFile, 3) || 'no output'}`);
      }
      if (await tryConnect(port, host)) break;
      if (Date.now() > deadline) throw new Error(`${m.name} is not listening on ${host}:${port} after ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs a command to completion, bounded in time; returns its exit code and output. */
export function runCommand(
  cmd: string,
  args: string[],
  timeoutMs: number,
  opts: SpawnOptions = {},
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    transient.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1_000_000) stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 1_000_000) stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const finish = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      transient.delete(child);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      resolve({ code, signal, stdout, stderr, ms });
    };
    child.on('error', (err) => {
      stderr += err.message;
      finish(null, null);
    });
    child.on('close', (code, signal) => finish(code, signal));
  });
}

/** Hard limit on open files for processes started from here (no CAP_SYS_RESOURCE to raise it). */
export function nofileHardLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s{2,}/)[2];
    if (hard === 'unlimited') return 1_048_576;
    const n = Number(hard);
    return Number.isFinite(n) && n > 0 ? n : 1024;
  } catch {
    return 1024;
  }
}
