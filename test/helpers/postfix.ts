/**
 * A throwaway Postfix instance (Debian's postfix 3.7, run as root) for interop tests.
 *
 * Each instance gets its own temp directory with config (etc/), queue and data
 * directories, a free loopback port, and a log file written by postlogd. Debian's
 * own instance (/etc/postfix, /var/spool/postfix) is never touched.
 *
 * What Postfix 3.7.11 logs for a session (smtpd_peername_lookup = no, so names are
 * always "unknown"; smtpd_client_port_logging = yes adds the ":PORT"):
 *
 *   postfix-test/smtpd[4867]: connect from unknown[127.0.0.2]:56737
 *   postfix-test/smtpd[4867]: 38FD920C17F: client=unknown[127.0.0.2]:56737
 *   postfix-test/cleanup[4869]: 38FD920C17F: message-id=<...>
 *   postfix-test/qmgr[4683]: 38FD920C17F: from=<b@example.org>, size=420, nrcpt=1 (queue active)
 *   postfix-test/smtpd[4867]: disconnect from unknown[127.0.0.2]:56737 ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5
 *   postfix-test/discard[4870]: 38FD920C17F: to=<a@example.com>, relay=none, delay=0.01, delays=0.01/0/0/0, dsn=2.0.0, status=sent (discarded)
 *   postfix-test/qmgr[4683]: 38FD920C17F: removed
 *
 * After `XCLIENT ADDR=127.0.0.9 PORT=4242` from 127.0.0.1, the connect line still
 * names the real peer and everything after it names the told client:
 *
 *   postfix-test/smtpd[4867]: connect from unknown[127.0.0.1]:39278
 *   postfix-test/smtpd[4867]: 56B5020C18A: client=unknown[127.0.0.9]:4242
 *   postfix-test/smtpd[4867]: disconnect from unknown[127.0.0.9]:4242 ehlo=2 xclient=0/1 mail=1 rcpt=1 data=1 quit=1 commands=6/7
 *
 * With the tls option and a STARTTLS client:
 *
 *   postfix-test/smtpd[26357]: Anonymous TLS connection established from unknown[127.0.0.1]:57446: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256
 *
 * IPv6 clients are logged as `unknown[::1]:PORT`. The `size=` in the qmgr line is
 * Postfix's queue-file size (headers it added included), not the bytes received.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export interface PostfixInstance {
  host: string;
  port: number;
  /** The instance's temp directory (config in dir/etc). */
  dir: string;
  logFile: string;
  /** true when smtpd also listens on [::1]:port. */
  ipv6: boolean;
  readLog(): string;
  /** Polls the log until re matches; rejects after timeoutMs (default 10 s). */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Edits main.cf (postconf -e) and reloads, waiting until the master has reloaded. */
  postconf(settings: Record<string, string>): Promise<void>;
  stop(): Promise<void>;
}

export interface PostfixOptions {
  /** smtpd_authorized_xclient_hosts; default '127.0.0.0/8, [::1]/128'. */
  xclientHosts?: string;
  extraMain?: Record<string, string>;
  /** Also listen on [::1] (same port). Throws if the host has no ::1. */
  ipv6?: boolean;
  /** Offer STARTTLS with this certificate (PEM file paths). */
  tls?: { cert: string; key: string };
  /** postscreen on the port (smtpd behind it as `smtpd pass`), for side-by-side tests; its settings go in extraMain. */
  postscreen?: boolean;
  /**
   * The DNS server this instance's resolver asks (port 53 only: resolv.conf has no port), as
   * postscreen's dnsblog does for DNSBL lookups. Postfix then starts in a mount namespace of its
   * own whose /etc/resolv.conf names it; the machine's resolv.conf is untouched.
   */
  nameserver?: string;
}

const POSTFIX = '/usr/sbin/postfix';
const POSTCONF = '/usr/sbin/postconf';
// Bounds, not expectations: `postfix start` runs postconf dozens of times and took over 20 s
// once on a loaded 2-core machine.
const START_TIMEOUT_MS = 60_000;
const COMMAND_TIMEOUT_MS = 60_000;

/** /usr/sbin/postfix exists and we are root (Postfix must start as root). */
export function postfixAvailable(): boolean {
  return existsSync(POSTFIX) && existsSync(POSTCONF) && process.getuid?.() === 0;
}

/** Whether the host can listen on ::1 at all. */
export async function ipv6LoopbackAvailable(): Promise<boolean> {
  try {
    const s = await listenOn('::1', 0);
    await closeServer(s);
    return true;
  } catch {
    return false;
  }
}

export async function startPostfix(opts: PostfixOptions = {}): Promise<PostfixInstance> {
  if (!postfixAvailable()) throw new Error('postfix is not installed or we are not root');
  const hostHasV6 = await ipv6LoopbackAvailable();
  if (opts.ipv6 && !hostHasV6) throw new Error('startPostfix: ipv6 requested but ::1 is unavailable');

  // The port is found by binding and releasing it, so another process may grab it
  // before Postfix binds; a few attempts with fresh ports cover that race.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await makeInstanceDir();
    const port = await freePort(opts.ipv6 === true);
    try {
      return await startIn(dir, port, opts, hostHasV6);
    } catch (err) {
      lastError = err;
      const log = safeRead(join(dir, 'maillog'));
      await run(POSTFIX, ['-c', join(dir, 'etc'), 'stop']).catch(() => undefined);
      await removeDir(dir);
      if (!PORT_TAKEN.test(log)) break; // a real problem: another port won't help
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

/** master's log line when the smtpd port was taken between freePort() and start. */
const PORT_TAKEN = /fatal: bind .*: Address already in use/;

/** uid/gid of Postfix's mail_owner ('postfix' on Debian), from /etc/passwd. */
function mailOwner(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postfix:'));
  const f = line?.split(':');
  if (!f || f.length < 4) throw new Error('no postfix user in /etc/passwd');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

async function makeInstanceDir(): Promise<string> {
  // The unprivileged daemons (user postfix) must be able to traverse to the queue,
  // so the temp dir lives directly under /tmp (sticky, world-traversable) and is 0755.
  const base = existsSync('/tmp') ? '/tmp' : tmpdir();
  const dir = await mkdtemp(join(base, 'postern-postfix-'));
  await chmod(dir, 0o755);
  return dir;
}

async function startIn(dir: string, port: number, opts: PostfixOptions, hostHasV6: boolean): Promise<PostfixInstance> {
  const etc = join(dir, 'etc');
  const logFile = join(dir, 'maillog');
  await mkdir(etc, { mode: 0o755 });
  // Postfix chdirs into the queue before post-install runs, so the two top-level
  // directories must exist; post-install then fixes their owners and creates the rest.
  await mkdir(join(dir, 'queue'), { mode: 0o755 });
  await mkdir(join(dir, 'data'), { mode: 0o700 });
  const owner = mailOwner();
  await chown(join(dir, 'data'), owner.uid, owner.gid); // the master's lock file lives here
  await writeFile(join(etc, 'main.cf'), mainCf(dir, opts, hostHasV6));
  await writeFile(join(etc, 'master.cf'), masterCf(port, opts.ipv6 === true, opts.postscreen === true));

  // `postfix start` runs post-install, which creates the queue subdirectories with
  // the owners Postfix insists on (postfix; postdrop for maildrop/public).
  let res;
  if (opts.nameserver) {
    const resolv = join(dir, 'resolv.conf');
    await writeFile(resolv, `nameserver ${opts.nameserver}\noptions attempts:1 timeout:2\n`, { mode: 0o644 });
    // The master and every daemon it forks stay in the namespace; the bind mount is private to it.
    res = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$1" -c "$2" start', resolv, POSTFIX, etc]);
  } else res = await run(POSTFIX, ['-c', etc, 'start']);
  if (res.code !== 0) throw new Error(`postfix start failed (${res.code}): ${res.output}\n${safeRead(logFile)}`);
  await waitForGreeting('127.0.0.1', port, START_TIMEOUT_MS, logFile);
  if (opts.ipv6) await waitForGreeting('::1', port, START_TIMEOUT_MS, logFile);

  let stopped: Promise<void> | null = null;
  const inst: PostfixInstance = {
    host: '127.0.0.1',
    port,
    dir,
    logFile,
    ipv6: opts.ipv6 === true,
    readLog: () => safeRead(logFile),
    waitForLog: (re, timeoutMs = 10_000) => pollLog(logFile, re, timeoutMs),
    async postconf(settings) {
      const edits = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
      const pc = await run(POSTCONF, ['-c', etc, '-e', ...edits]);
      if (pc.code !== 0) throw new Error(`postconf -e failed: ${pc.output}`);
      const before = countMatches(safeRead(logFile), RELOAD_LINE);
      const rl = await run(POSTFIX, ['-c', etc, 'reload']);
      if (rl.code !== 0) throw new Error(`postfix reload failed: ${rl.output}`);
      // reload only signals the master; its log line says the new config is in force
      await pollUntil(() => countMatches(safeRead(logFile), RELOAD_LINE) > before, 10_000, 'postfix master reload');
    },
    stop() {
      stopped ??= (async () => {
        await run(POSTFIX, ['-c', etc, 'stop']).catch(() => undefined);
        await removeDir(dir);
      })();
      return stopped;
    },
  };
  return inst;
}

/** `postfix/master[123]: reload -- version 3.7.11, configuration /tmp/.../etc` */
const RELOAD_LINE = /\/master\[\d+\]: reload -- version /g;

function mainCf(dir: string, opts: PostfixOptions, hostHasV6: boolean): string {
  const settings: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    // postlogd writes here (needs the postlog service in master.cf); the prefix
    // list must allow the path or Postfix refuses it
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    syslog_name: 'postfix-test',
    myhostname: 'postfix-test.localhost',
    mydomain: 'localhost',
    myorigin: '$myhostname',
    // nothing is local: every recipient is relayed, and relaying goes to discard
    mydestination: '',
    local_recipient_maps: '',
    relay_domains: '',
    alias_maps: '',
    alias_database: '',
    default_transport: 'discard:discarded',
    relay_transport: 'discard:discarded',
    local_transport: 'discard:discarded',
    virtual_transport: 'discard:discarded',
    inet_interfaces: 'loopback-only',
    inet_protocols: hostHasV6 ? 'all' : 'ipv4',
    mynetworks: hostHasV6 ? '127.0.0.0/8 [::1]/128' : '127.0.0.0/8',
    // after XCLIENT the told client (127.0.0.x in tests) must itself be in mynetworks
    smtpd_relay_restrictions: 'permit_mynetworks, reject',
    smtpd_authorized_xclient_hosts: opts.xclientHosts ?? (hostHasV6 ? '127.0.0.0/8, [::1]/128' : '127.0.0.0/8'),
    smtpd_client_port_logging: 'yes',
    // no PTR lookups: 127.0.0.2 etc. would wait for DNS on machines without it
    smtpd_peername_lookup: 'no',
    message_size_limit: String(50 * 1024 * 1024),
    biff: 'no',
    // the tests open many connections from one address in a short time
    smtpd_client_connection_rate_limit: '0',
    smtpd_client_connection_count_limit: '0',
    smtpd_error_sleep_time: '0',
  };
  if (opts.tls) {
    settings.smtpd_tls_cert_file = opts.tls.cert;
    settings.smtpd_tls_key_file = opts.tls.key;
    settings.smtpd_tls_security_level = 'may';
    settings.smtpd_tls_loglevel = '1';
  }
  Object.assign(settings, opts.extraMain ?? {});
  return Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n';
}

function masterCf(port: number, ipv6: boolean, postscreen = false): string {
  // chroot is off everywhere ('n' in column 5): a chroot would need copies of
  // /etc files inside the queue directory.
  const front = postscreen
    ? [`127.0.0.1:${port} inet n - n - 1 postscreen`, 'smtpd     pass  - - n - - smtpd', 'dnsblog   unix  - - n - 0 dnsblog', 'tlsproxy  unix  - - n - 0 tlsproxy']
    : [`127.0.0.1:${port} inet n - n - - smtpd`];
  const services = [
    ...front,
    ...(ipv6 ? [`[::1]:${port} inet n - n - - smtpd`] : []),
    'pickup    unix  n - n 60 1 pickup',
    'cleanup   unix  n - n -  0 cleanup',
    'qmgr      unix  n - n 300 1 qmgr',
    'tlsmgr    unix  - - n 1000? 1 tlsmgr',
    'rewrite   unix  - - n - - trivial-rewrite',
    'bounce    unix  - - n - 0 bounce',
    'defer     unix  - - n - 0 bounce',
    'trace     unix  - - n - 0 bounce',
    'verify    unix  - - n - 1 verify',
    'flush     unix  n - n 1000? 0 flush',
    'proxymap  unix  - - n - - proxymap',
    'proxywrite unix - - n - 1 proxymap',
    'smtp      unix  - - n - - smtp',
    'relay     unix  - - n - - smtp',
    'showq     unix  n - n - - showq',
    'error     unix  - - n - - error',
    'retry     unix  - - n - - error',
    'discard   unix  - - n - - discard',
    'local     unix  - n n - - local',
    'virtual   unix  - n n - - virtual',
    'lmtp      unix  - - n - - lmtp',
    'anvil     unix  - - n - 1 anvil',
    'scache    unix  - - n - 1 scache',
    'postlog   unix-dgram n - n - 1 postlogd',
  ];
  return services.join('\n') + '\n';
}

// ---- log parsing -------------------------------------------------------------

export interface ClientLine {
  queueId: string;
  name: string;
  address: string;
  port: number;
}

/** `QUEUEID: client=NAME[ADDR]:PORT` lines (smtpd, one per accepted message). */
export function clientLines(log: string): ClientLine[] {
  const out: ClientLine[] = [];
  for (const m of log.matchAll(/\/smtpd\[\d+\]: ([0-9A-Za-z]+): client=([^\s[]+)\[([^\]]+)\]:(\d+)/g)) {
    out.push({ queueId: m[1]!, name: m[2]!, address: m[3]!, port: Number(m[4]) });
  }
  return out;
}

/** `connect from NAME[ADDR]:PORT` lines: the real TCP peer, before any XCLIENT. */
export function connectLines(log: string): { name: string; address: string; port: number }[] {
  const out: { name: string; address: string; port: number }[] = [];
  for (const m of log.matchAll(/\/smtpd\[\d+\]: connect from ([^\s[]+)\[([^\]]+)\]:(\d+)/g)) {
    out.push({ name: m[1]!, address: m[2]!, port: Number(m[3]) });
  }
  return out;
}

/** qmgr `QUEUEID: from=<...>, size=N, nrcpt=N` lines. */
export function fromLines(log: string): { queueId: string; from: string; size: number; nrcpt: number }[] {
  const out: { queueId: string; from: string; size: number; nrcpt: number }[] = [];
  for (const m of log.matchAll(/\/qmgr\[\d+\]: ([0-9A-Za-z]+): from=<([^>]*)>, size=(\d+), nrcpt=(\d+)/g)) {
    out.push({ queueId: m[1]!, from: m[2]!, size: Number(m[3]), nrcpt: Number(m[4]) });
  }
  return out;
}

// ---- plumbing ----------------------------------------------------------------

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function countMatches(text: string, re: RegExp): number {
  return [...text.matchAll(re)].length;
}

async function pollUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(50);
  }
}

async function pollLog(file: string, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  const plain = new RegExp(re.source, re.flags.replace('g', '')); // a /g regex would keep lastIndex
  for (;;) {
    const m = plain.exec(safeRead(file));
    if (m) return m;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${re} in ${file}; log:\n${safeRead(file).slice(-3000)}`);
    }
    await sleep(50);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RunResult {
  code: number | null;
  output: string;
}

/**
 * Runs a command with a timeout. Resolves on 'exit', not 'close': `postfix start`
 * leaves a daemon behind that may still hold inherited pipes.
 */
function run(cmd: string, args: string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs}ms: ${output}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      // don't let a daemon that inherited the pipes keep this process alive
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ code, output });
    });
  });
}

function listenOn(host: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen({ host, port, exclusive: true, ipv6Only: host.includes(':') }, () => resolve(s));
  });
}

function closeServer(s: net.Server): Promise<void> {
  return new Promise((r) => s.close(() => r()));
}


/** Connects until the server greets with 220 (bounded). */
async function waitForGreeting(host: string, port: number, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await greetingOnce(host, port, Math.max(500, Math.min(3000, deadline - Date.now())));
    if (last.startsWith('220')) return;
    // a fatal bind error means this port is lost; let the caller retry another one
    if (PORT_TAKEN.test(safeRead(logFile))) break;
    await sleep(100);
  }
  throw new Error(`postfix on ${host}:${port} did not greet within ${timeoutMs}ms (last: ${last || 'nothing'}); log:\n${safeRead(logFile).slice(-3000)}`);
}

function greetingOnce(host: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    const done = (v: string): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(buf), timeoutMs);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf);
    });
    sock.on('error', (e) => done(`error: ${e.message}`));
    sock.on('close', () => done(buf));
  });
}

async function removeDir(dir: string): Promise<void> {
  // daemons may still be exiting and writing for a moment after `postfix stop`
  await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }).catch(() => undefined);
}

// ---- a raw SMTP client for scripted sessions (XCLIENT, PROXY headers, pipelining) ----

/** A line-level SMTP client: every read is bounded by a timeout. */
export class RawSmtp {
  private buf = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  private closed = false;
  /** The 220 greeting (or whatever the server said first). */
  greeting = '';

  private constructor(
    readonly socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiting?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiting?.();
    });
    socket.on('error', () => undefined); // surfaced as 'close' to pending reads
  }

  /**
   * Connects and reads the greeting. `preface` is written before the greeting is
   * read (a PROXY header); `localAddress` binds the client side (e.g. 127.0.0.2).
   */
  static async connect(
    host: string,
    port: number,
    opts: { localAddress?: string; timeoutMs?: number; preface?: string | Buffer } = {},
  ): Promise<RawSmtp> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const c = new RawSmtp(socket, timeoutMs);
    if (opts.preface !== undefined) socket.write(opts.preface);
    c.greeting = await c.reply();
    return c;
  }

  /** Writes raw bytes as they are. */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends one command line (CRLF added) and returns its complete reply. */
  async command(line: string | Buffer): Promise<string> {
    this.socket.write(Buffer.concat([Buffer.isBuffer(line) ? line : Buffer.from(line, 'utf8'), Buffer.from('\r\n')]));
    return this.reply();
  }

  /** Sends a message body after a 354: dot-stuffs it, ends it with CRLF.CRLF, returns the reply. */
  async data(body: string | Buffer): Promise<string> {
    const raw = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    let text = raw.toString('latin1').replace(/(^|\r\n)\./g, '$1..');
    if (!text.endsWith('\r\n')) text += '\r\n';
    this.socket.write(Buffer.from(text + '.\r\n', 'latin1'));
    return this.reply();
  }

  /** Reads the next complete (possibly multi-line) reply; its lines joined with '\n'. */
  async reply(): Promise<string> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      // latin1 maps bytes 1:1, so offsets stay byte offsets; replies are returned as UTF-8
      const text = this.buf.toString('latin1');
      const lines = text.split('\r\n');
      for (let i = 0; i < lines.length - 1; i++) {
        if (/^\d{3}(?: |$)/.test(lines[i]!)) {
          const used = lines.slice(0, i + 1).join('\r\n') + '\r\n';
          this.buf = this.buf.subarray(used.length);
          return Buffer.from(lines.slice(0, i + 1).join('\n'), 'latin1').toString('utf8');
        }
      }
      if (this.closed) throw new Error(`connection closed while waiting for a reply (got: ${JSON.stringify(text)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no complete reply within ${this.timeoutMs}ms (got: ${JSON.stringify(text)})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(t);
          this.waiting = null;
          resolve();
        };
      });
    }
  }

  /** Sends QUIT (best effort) and closes. */
  async quit(): Promise<void> {
    if (!this.closed) {
      try {
        await this.command('QUIT');
      } catch {
        // already gone
      }
    }
    this.socket.destroy();
  }

  close(): void {
    this.socket.destroy();
  }
}
