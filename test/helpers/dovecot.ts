/**
 * A throwaway Dovecot (Debian's dovecot-core, 2.3) running only its auth service, for
 * the dovecot verifier's tests: the same auth-client protocol Postfix's
 * `smtpd_sasl_type = dovecot` speaks.
 *
 * Each instance gets its own temp directory with dovecot.conf, base_dir (the master's
 * sockets and pid file), a passwd-file and a log file, a unix auth-client socket and a
 * loopback TCP listener. `protocols =` is empty, so no IMAP/POP3/LMTP service starts.
 * Debian's own instance (/etc/dovecot, /run/dovecot) is never touched.
 *
 * The master is started in its own process group so that `kill()` can take the whole
 * instance (master, auth, anvil, log) down at once, the way a crash would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { freePort } from './net.js';

const DOVECOT = '/usr/sbin/dovecot';
const START_TIMEOUT_MS = 20_000;

export interface DovecotUser {
  user: string;
  /** Stored as `{PLAIN}password` unless `hash` is given. */
  password?: string;
  /** A full passwd-file password field, e.g. `{BLF-CRYPT}$2y$05$...`. */
  hash?: string;
}

export interface DovecotOptions {
  users: DovecotUser[];
  /** Extra lines for dovecot.conf (e.g. `auth_failure_delay = 2s`). */
  extraConfig?: string;
}

export interface DovecotInstance {
  dir: string;
  /** The auth-client unix socket. */
  socketPath: string;
  host: string;
  /** The auth-client TCP listener. */
  port: number;
  logFile: string;
  readLog(): string;
  /** SIGKILL to the whole instance (master and its children), like a crash. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT to the whole instance: it keeps its connections but answers nothing. */
  pause(): void;
  resume(): void;
  /** Starts the instance again on the same socket and port (after kill or stop). */
  restart(): Promise<void>;
  /** Stops the instance and removes its directory. */
  stop(): Promise<void>;
}

/** Why Dovecot tests cannot run here, or null when they can. */
export function dovecotMissing(): string | null {
  if (!existsSync(DOVECOT)) return 'dovecot is not installed (apt-get install -y dovecot-core)';
  if (process.getuid?.() !== 0) return 'dovecot must be started as root';
  if (!hasUser('dovecot') || !hasUser('dovenull')) return 'the dovecot and dovenull users are missing (reinstall dovecot-core)';
  return null;
}

function hasUser(name: string): boolean {
  return readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.startsWith(`${name}:`));
}

export async function startDovecot(opts: DovecotOptions): Promise<DovecotInstance> {
  const why = dovecotMissing();
  if (why !== null) throw new Error(why);
  // The auth process runs as the unprivileged `dovecot` user and must reach the
  // passwd-file: a 0755 directory directly under /tmp.
  const dir = await mkdtemp('/tmp/postern-dovecot-');
  await chmod(dir, 0o755);
  const port = await freePort();
  const socketPath = join(dir, 'auth-client');
  const logFile = join(dir, 'dovecot.log');
  const passwd = join(dir, 'passwd');
  const conf = join(dir, 'dovecot.conf');
  await mkdir(join(dir, 'run'), { mode: 0o755 });
  await mkdir(join(dir, 'state'), { mode: 0o755 });
  await writeFile(passwd, opts.users.map((u) => `${u.user}:${u.hash ?? `{PLAIN}${u.password ?? ''}`}::::::\n`).join(''), { mode: 0o644 });
  await writeFile(conf, dovecotConf(dir, passwd, socketPath, logFile, port, opts.extraConfig ?? ''));

  let master: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    const child = spawn(DOVECOT, ['-F', '-c', conf], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    master = child;
    try {
      await waitUntilListening(socketPath, port, child, () => stderr, logFile);
    } catch (e) {
      await killGroup(child);
      master = null;
      throw e;
    }
  };

  const killAll = async (signal: NodeJS.Signals): Promise<void> => {
    const m = master;
    master = null;
    if (m !== null) await killGroup(m, signal);
  };

  try {
    await start();
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }

  let stopped: Promise<void> | null = null;
  return {
    dir,
    socketPath,
    host: '127.0.0.1',
    port,
    logFile,
    readLog: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    kill: () => killAll('SIGKILL'),
    pause: () => signalGroup(master, 'SIGSTOP'),
    resume: () => signalGroup(master, 'SIGCONT'),
    async restart() {
      await killAll('SIGTERM');
      await start();
    },
    stop() {
      stopped ??= (async () => {
        await killAll('SIGTERM');
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

function dovecotConf(dir: string, passwd: string, socketPath: string, logFile: string, port: number, extra: string): string {
  return `# Postern test instance: the auth service only.
base_dir = ${join(dir, 'run')}
state_dir = ${join(dir, 'state')}
instance_name = postern-test-${port}
log_path = ${logFile}
protocols =
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login
# Failures are answered at once (the default waits 2 s), so the tests stay quick.
auth_failure_delay = 0
auth_verbose = yes
shutdown_clients = yes
passdb {
  driver = passwd-file
  args = ${passwd}
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener ${socketPath} {
    mode = 0666
  }
  inet_listener {
    address = 127.0.0.1
    port = ${port}
  }
}
${extra}
`;
}

async function waitUntilListening(
  socketPath: string,
  port: number,
  child: ChildProcess,
  stderr: () => string,
  logFile: string,
): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  for (;;) {
    if (exited !== null) throw new Error(`dovecot exited with ${String(exited)}: ${stderr()}\n${safeRead(logFile)}`);
    if ((await canConnect({ path: socketPath })) && (await canConnect({ host: '127.0.0.1', port }))) return;
    if (Date.now() > deadline) throw new Error(`dovecot did not listen within ${START_TIMEOUT_MS} ms: ${stderr()}\n${safeRead(logFile)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function canConnect(to: net.NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(to);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Signals the process group the master leads and waits for the master to exit. */
async function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    process.kill(-child.pid, signal);
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 10_000);
  await exited;
  clearTimeout(timer);
  // The children notice the master is gone on their own; give them a moment so the
  // next instance on the same port does not race them.
  if (signal === 'SIGKILL') {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group is empty
    }
  }
}

function signalGroup(child: ChildProcess | null, signal: NodeJS.Signals): void {
  if (child?.pid === undefined) throw new Error('dovecot is not running');
  process.kill(-child.pid, signal);
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
