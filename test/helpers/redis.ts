// A real redis-server for the shared-state tests: its own temporary directory, a free
// loopback port, no persistence; killed (SIGKILL) and started again on the same port to
// test outages. Always stopped by the test that starts it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { RedisLink, type StateLog } from '../../src/state/redis-link.js';
import { freePort } from './net.js';

const REDIS = '/usr/bin/redis-server';

export function redisAvailable(): boolean {
  return existsSync(REDIS);
}

export interface RedisServer {
  port: number;
  url: string;
  /** SIGKILL: an outage, as a crash or a partition looks to clients. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing was saved). */
  restart(): Promise<void>;
  /** A command through a fresh connection, answered as text (RESP simple/bulk/integer). */
  command(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startRedis(): Promise<RedisServer> {
  if (!redisAvailable()) throw new Error(`${REDIS} is not installed (apt-get install redis-server)`);
  const dir = await mkdtemp(join(tmpdir(), 'postern-redis-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  let log = '';
  const launch = async () => {
    child = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      await waitForPort(port, 10_000);
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${(err as Error).message}: ${log}`);
    }
  };
  const kill = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: launch,
    command: (...args) => rawCommand(port, args),
    stop: async () => {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One RESP command on its own connection; the reply's first line, or a bulk string's body. */
function rawCommand(port: number, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    s.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\r\n');
      if (nl < 0) return;
      const head = buf.slice(0, nl);
      if (head.startsWith('$')) {
        const len = Number(head.slice(1));
        if (len < 0) return done('');
        if (buf.length < nl + 2 + len + 2) return;
        return done(buf.slice(nl + 2, nl + 2 + len));
      }
      return done(head.slice(1));
    });
    s.on('error', reject);
    const done = (v: string) => {
      s.destroy();
      resolve(v);
    };
  });
}

/**
 * For a describe block: a redis-server started before its tests and stopped after them,
 * and `link`, which opens a ready RedisLink under `prefix` (kept in `links`, closed with it).
 */
export function suiteRedis(logger: StateLog): { readonly redis: RedisServer; readonly links: readonly RedisLink[]; link(prefix: string): Promise<RedisLink> } {
  let server: RedisServer | null = null;
  const links: RedisLink[] = [];
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    for (const l of links) await l.close();
    await server?.stop();
  });
  const redis = (): RedisServer => {
    if (!server) throw new Error('redis-server not started yet (use it inside a test)');
    return server;
  };
  return {
    get redis() {
      return redis();
    },
    links,
    link: async (prefix) => {
      const l = new RedisLink({ url: redis().url, prefix, logger, maxRetryDelayMs: 200 });
      links.push(l);
      assert.equal(await l.ready(5000), true, 'RedisLink ready');
      return l;
    },
  };
}
