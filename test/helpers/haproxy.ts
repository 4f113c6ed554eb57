/**
 * A throwaway HAProxy (Debian's package, 2.6 on bookworm) in TCP mode, as the L4 balancer
 * in front of Postern: a frontend on a free loopback port, one server with `send-proxy-v2`
 * (or `send-proxy` for v1). No health checks (`check` is off), so every connection Postern
 * sees is a test client's. A second, HTTP frontend with `monitor-uri` tells us when
 * HAProxy is up without opening a connection through to Postern.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

const HAPROXY = '/usr/sbin/haproxy';
const START_TIMEOUT_MS = 10_000;

export interface HaproxyInstance {
  host: string;
  /** The frontend clients connect to. */
  port: number;
  dir: string;
  /** HAProxy's stdout/stderr so far. */
  output(): string;
  stop(): Promise<void>;
}

export interface HaproxyOptions {
  /** The server HAProxy forwards to (Postern's listener). */
  target: { host: string; port: number };
  sendProxy: 'v1' | 'v2';
  /** Extra words on the `server` line, e.g. `proxy-v2-options unique-id`. */
  serverOptions?: string;
}

export function haproxyAvailable(): boolean {
  return existsSync(HAPROXY);
}

export async function startHaproxy(opts: HaproxyOptions): Promise<HaproxyInstance> {
  if (!haproxyAvailable()) throw new Error(`${HAPROXY} is not installed (apt-get install haproxy)`);
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'postern-haproxy-'));
    try {
      return await startIn(dir, await freePort(), await freePort(), opts);
    } catch (err) {
      lastError = err;
      await rm(dir, { recursive: true, force: true });
      if (!/Address already in use|cannot bind/i.test(String(err))) break;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}

async function startIn(dir: string, port: number, monitorPort: number, opts: HaproxyOptions): Promise<HaproxyInstance> {
  const t = opts.target;
  const target = t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
  const send = opts.sendProxy === 'v2' ? 'send-proxy-v2' : 'send-proxy';
  const cfg = `global
  maxconn 256

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend smtp
  bind 127.0.0.1:${port}
  default_backend postern

frontend monitor
  mode http
  bind 127.0.0.1:${monitorPort}
  monitor-uri /ok

backend postern
  server p1 ${target} ${send} ${opts.serverOptions ?? ''}
`;
  const conf = join(dir, 'haproxy.cfg');
  await writeFile(conf, cfg);
  // -db: foreground, no daemon, so the child is HAProxy itself and stop() can signal it.
  const child = spawn(HAPROXY, ['-db', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  let exited = false;
  child.once('exit', () => (exited = true));

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited) throw new Error(`haproxy exited: ${out}`);
    if (await monitorOk(monitorPort)) break;
    if (Date.now() > deadline) {
      await kill(child);
      throw new Error(`haproxy did not start within ${START_TIMEOUT_MS} ms: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  let stopped: Promise<void> | null = null;
  return {
    host: '127.0.0.1',
    port,
    dir,
    output: () => out,
    stop() {
      stopped ??= (async () => {
        await kill(child);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

function monitorOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    s.on('connect', () => s.write('GET /ok HTTP/1.0\r\n\r\n'));
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(/^HTTP\/1\.[01] 200/.test(buf));
    });
    s.on('error', () => done(false));
    s.on('close', () => done(false));
  });
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

