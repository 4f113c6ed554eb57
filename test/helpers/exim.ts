/**
 * A throwaway Exim 4.96 (Debian's exim4-daemon-heavy) for PROXY-protocol interop tests.
 *
 * Debian's Exim packages conflict with the installed Postfix, so they are never installed:
 * `apt-get download` fetches exim4-daemon-heavy, exim4-base and exim4-config into a cache
 * directory (kept between runs), `dpkg -x` unpacks them beside it, and each instance runs
 * that binary with its own config (`-C`), spool and log in a scratch directory. What this
 * needs from the machine:
 *   - root (we run the daemon; Exim's fixed never_users is root, which only matters for
 *     deliveries, and there are none: the DATA ACL discards every message);
 *   - the binary's compiled-in exim user, `Debian-exim`, which is created (useradd -r) if
 *     missing: Exim looks it up at startup and exits without it;
 *   - the heavy daemon's shared libraries: .ci/run installs them (libmariadb3, libidn12,
 *     libspf2-2, ... are ordinary libraries with no MTA conflict). When one is missing the
 *     tests skip, naming it.
 *
 * What Exim 4.96 logs (log_selector +incoming_port +proxy +smtp_connection) for a session
 * that arrived through Postern with a PROXY header naming 127.0.0.2:45678:
 *
 *   SMTP connection from [127.0.0.1]:40312 (TCP/IP connection count = 1)
 *   1xVS8C-0001F7-00 <= a@example.org H=(client.test) [127.0.0.2]:45678 P=esmtp PRX=127.0.0.1 S=201 for b@example.net
 *   1xVS8C-0001F7-00 => blackhole (DATA ACL discarded recipients)
 *   1xVS8C-0001F7-00 Completed
 *   SMTP connection from (client.test) [127.0.0.2]:45678 closed by QUIT
 *
 * The first line names the real TCP peer (the proxy), everything after the header the
 * client the header named; PRX= is the proxy.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { freePort } from './net.js';

export interface EximInstance {
  host: string;
  port: number;
  dir: string;
  logFile: string;
  /** The mainlog so far. */
  readLog(): string;
  /** Polls the mainlog until re matches; rejects after timeoutMs (default 10 s). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /**
   * A forced queue run (`exim -qff`): deferred messages are tried again now, retry times or
   * not. Asynchronous: a sink in this process must keep answering while Exim delivers.
   */
  queueRun(): Promise<void>;
  stop(): Promise<void>;
}

export interface EximOptions {
  /** hosts_proxy (an Exim host list); default `<; 127.0.0.1 ; ::1` (or without ::1 when the host has none). */
  hostsProxy?: string;
  /** proxy_protocol_timeout; default 3s (Exim's own default). */
  proxyTimeout?: string;
  /** Extra main-section lines appended to the config. */
  extraMain?: string;
  /** Exim as a client: accept every message and deliver it over SMTP to this host and port (manualroute). */
  relayTo?: { host: string; port: number };
}

/** Where the .debs and the unpacked tree live between runs. */
export const EXIM_CACHE = process.env.POSTERN_EXIM_CACHE ?? '/var/cache/postern-test/exim';
const PACKAGES = ['exim4-daemon-heavy', 'exim4-base', 'exim4-config'];
/** Debian's build: EXIM_USER=ref:Debian-exim (the binary exits at once without it). */
const EXIM_USER = 'Debian-exim';
const START_TIMEOUT_MS = 15_000;

function binary(): string {
  return join(EXIM_CACHE, 'root', 'usr', 'sbin', 'exim4');
}

let prepared: Promise<string | null> | null = null;

/**
 * Downloads and unpacks Exim if needed (once per process). Resolves to null when Exim can
 * run here, or to the reason it cannot (for a test's `skip`).
 */
export function eximSkipReason(): Promise<string | null> {
  prepared ??= prepare().catch((err: unknown) => `exim unavailable: ${(err as Error).message}`);
  return prepared;
}

/** true when an Exim with PROXY support can be run (downloading it first if needed). */
export async function eximAvailable(): Promise<boolean> {
  return (await eximSkipReason()) === null;
}

async function prepare(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root (the Exim harness creates a system user and runs the daemon as root)';
  if (!existsSync(binary())) {
    const dl = join(EXIM_CACHE, 'debs');
    await mkdir(dl, { recursive: true });
    const have = (p: string): boolean => readdirSync(dl).some((f) => f.startsWith(`${p}_`) && f.endsWith('.deb'));
    if (!PACKAGES.every(have)) {
      // apt-get download writes into the current directory; as root with a root-only
      // directory apt warns that it downloads unsandboxed, which is harmless.
      const r = spawnSync('apt-get', ['download', ...PACKAGES], { cwd: dl, encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0 || !PACKAGES.every(have)) {
        return `apt-get download ${PACKAGES.join(' ')} failed (run apt-get update first?): ${(r.stderr || r.error?.message || '').trim().slice(-400)}`;
      }
    }
    // Unpack into a fresh directory and rename it into place, so a concurrent run never
    // sees half a tree.
    const tmp = await mkdtemp(join(EXIM_CACHE, 'root.tmp-'));
    for (const deb of readdirSync(dl).filter((f) => f.endsWith('.deb'))) {
      const r = spawnSync('dpkg', ['-x', join(dl, deb), tmp], { encoding: 'utf8' });
      if (r.status !== 0) return `dpkg -x ${deb} failed: ${r.stderr}`;
    }
    try {
      renameSync(tmp, join(EXIM_CACHE, 'root'));
    } catch {
      await rm(tmp, { recursive: true, force: true }); // another process won the race
    }
  }
  if (spawnSync('getent', ['passwd', EXIM_USER]).status !== 0) {
    const r = spawnSync('useradd', ['-r', '-U', '-d', '/nonexistent', '-s', '/usr/sbin/nologin', EXIM_USER], { encoding: 'utf8' });
    if (r.status !== 0 && spawnSync('getent', ['passwd', EXIM_USER]).status !== 0) return `useradd ${EXIM_USER} failed: ${r.stderr}`;
  }
  const v = spawnSync(binary(), ['-bV', '-C', '/dev/null'], { encoding: 'utf8' });
  const out = `${v.stdout}${v.stderr}`;
  const lib = /error while loading shared libraries: (\S+)/.exec(out);
  if (lib) return `exim4 needs ${lib[1]} (install exim4-daemon-heavy's library dependencies; see .ci/run)`;
  if (!/^Exim version 4\.\d+/m.test(out)) return `exim4 -bV failed: ${out.trim().slice(0, 400)}`;
  if (!/^Support for:.*\bPROXY\b/m.test(out)) return 'this Exim was built without SUPPORT_PROXY';
  return null;
}

/** `Exim version 4.96 #2 ...` */
export function eximVersion(): string {
  const v = spawnSync(binary(), ['-bV', '-C', '/dev/null'], { encoding: 'utf8' });
  return /^Exim version (\S+)/m.exec(`${v.stdout}`)?.[1] ?? 'unknown';
}

export async function startExim(opts: EximOptions = {}): Promise<EximInstance> {
  const why = await eximSkipReason();
  if (why) throw new Error(why);
  const hasV6 = await canListen('::1');
  let lastError: unknown;
  // A port found free may be taken before Exim binds it: retry with another.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp('/tmp/postern-exim-');
    try {
      return await startIn(dir, await freePort(), opts, hasV6);
    } catch (err) {
      lastError = err;
      await rm(dir, { recursive: true, force: true });
      if (!/Address already in use/.test(String(err))) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

async function startIn(dir: string, port: number, opts: EximOptions, hasV6: boolean): Promise<EximInstance> {
  // The receiving processes run as the exim user: the spool and log must be theirs, and
  // the path to them traversable.
  await chmod(dir, 0o755);
  const uid = Number(spawnSync('id', ['-u', EXIM_USER], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', EXIM_USER], { encoding: 'utf8' }).stdout.trim());
  for (const sub of ['spool', 'log']) {
    await mkdir(join(dir, sub), { mode: 0o750 });
    await chown(join(dir, sub), uid, gid);
  }
  const conf = join(dir, 'exim.conf');
  const logFile = join(dir, 'log', 'mainlog');
  const loopback = hasV6 ? '<; 127.0.0.1 ; ::1' : '127.0.0.1';
  const lines = [
    'primary_hostname = exim-test.localhost',
    `exim_path = ${binary()}`,
    `spool_directory = ${join(dir, 'spool')}`,
    `log_file_path = ${join(dir, 'log', '%slog')}`,
    `pid_file_path = ${join(dir, 'exim.pid')}`,
    `local_interfaces = ${loopback}`,
    'keep_environment =',
    // No DNS where it can be avoided. Exim 4.96 still looks up the PTR name of every
    // client a PROXY header names (proxy.c, whatever host_lookup says): bound it to one
    // 1 s query through Exim's own resolver, without the gethostbyaddr() fallback.
    'host_lookup =',
    'host_lookup_order = bydns',
    'dns_retrans = 1s',
    'dns_retry = 1',
    'rfc1413_hosts =',
    'tls_advertise_hosts =',
    `hosts_proxy = ${opts.hostsProxy ?? loopback}`,
    `proxy_protocol_timeout = ${opts.proxyTimeout ?? '3s'}`,
    'log_selector = +incoming_port +proxy +smtp_connection +received_recipients +smtp_protocol_error +smtp_syntax_error',
    'smtp_accept_max = 200',
    'smtp_accept_max_per_host = 200',
    'smtp_accept_queue_per_connection = 0',
    'message_size_limit = 50M',
    'acl_smtp_rcpt = acl_rcpt',
    'acl_smtp_data = acl_data',
    opts.extraMain ?? '',
    'begin acl',
    'acl_rcpt:',
    '  accept',
    ...(opts.relayTo
      ? [
          // Exim as a client: every message goes on over SMTP, as its smtp transport sends it.
          'acl_data:',
          '  accept',
          'begin routers',
          'onward:',
          '  driver = manualroute',
          `  route_list = * ${opts.relayTo.host}::${opts.relayTo.port}`,
          '  transport = onward_smtp',
          '  self = send',
          'begin transports',
          'onward_smtp:',
          '  driver = smtp',
          '  hosts_avoid_tls = *',
          '  allow_localhost',
          '',
        ]
      : [
          // Received, logged, then thrown away: nothing is ever delivered or queued.
          'acl_data:',
          '  discard',
          'begin routers',
          'blackhole:',
          '  driver = redirect',
          '  data = :blackhole:',
          '',
        ]),
  ];
  await writeFile(conf, lines.join('\n'), { mode: 0o644 });

  const check = spawnSync(binary(), ['-C', conf, '-bV'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`exim config check failed: ${check.stdout}${check.stderr}`);

  // -bdf: daemon in the foreground, so the child is the daemon and stop() can signal it.
  const child = spawn(binary(), ['-C', conf, '-bdf', '-oX', String(port)], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));

  try {
    await waitForGreeting(port, () => (exited ? `exim exited: ${output}\n${safeRead(logFile)}${safeRead(join(dir, 'log', 'paniclog'))}` : null));
  } catch (err) {
    await kill(child);
    throw err;
  }

  let stopped: Promise<void> | null = null;
  return {
    host: '127.0.0.1',
    port,
    dir,
    logFile,
    readLog: () => safeRead(logFile),
    waitForLog: (re, timeoutMs = 10_000) => pollLog(logFile, re, timeoutMs),
    queueRun: () =>
      new Promise<void>((resolve) => {
        const q = spawn(binary(), ['-C', conf, '-qff'], { cwd: dir, stdio: 'ignore' });
        const timer = setTimeout(() => q.kill('SIGKILL'), 30_000);
        q.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      }),
    stop() {
      stopped ??= (async () => {
        await kill(child);
        await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
      })();
      return stopped;
    },
  };
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Waits for a 220 from a client address outside hosts_proxy (127.0.0.254): a probe from
 * 127.0.0.1 would have to send a PROXY header first.
 */
async function waitForGreeting(port: number, dead: () => string | null): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = '';
  while (Date.now() < deadline) {
    const d = dead();
    if (d) throw new Error(d);
    last = await greetingOnce(port);
    if (last.startsWith('220')) return;
    await sleep(100);
  }
  throw new Error(`exim on port ${port} did not greet within ${START_TIMEOUT_MS} ms (last: ${last || 'nothing'})`);
}

function greetingOnce(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.254' });
    let buf = '';
    const done = (v: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(buf), 2000);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) {
        s.write('QUIT\r\n');
        done(buf);
      }
    });
    s.on('error', (e) => done(`error: ${e.message}`));
    s.on('close', () => done(buf));
  });
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function pollLog(file: string, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  const plain = new RegExp(re.source, re.flags.replace('g', ''));
  for (;;) {
    const m = plain.exec(safeRead(file));
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${re} in ${file}; log:\n${safeRead(file).slice(-3000)}`);
    await sleep(50);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function canListen(host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port: 0 }, () => s.close(() => resolve(true)));
  });
}

