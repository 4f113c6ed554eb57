// Debian's rbldnsd serving ip4set/ip6trie zones from files in a temporary directory, on
// 127.0.0.1 and a free UDP port (or an address and port given), in the foreground (-n);
// stopped by the test that starts it.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const RBLDNSD = '/usr/sbin/rbldnsd';

export function rbldnsdAvailable(): boolean {
  return existsSync(RBLDNSD);
}

export interface RbldnsdZone {
  /** The zone name, e.g. `bl.test`. */
  name: string;
  /** `ip4set` (IPv4 ranges) or `ip6trie` (IPv6 CIDRs). */
  type: 'ip4set' | 'ip6trie';
  /** The data file's lines, in rbldnsd(8) syntax (`:127.0.0.2:text` sets the default answer). */
  lines: string[];
}

export interface Rbldnsd {
  port: number;
  /** `127.0.0.1:PORT`, for `resolvers`. */
  server: string;
  stop(): Promise<void>;
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * Starts rbldnsd with `ttl` seconds on every answer; resolves once it says it started. On
 * 127.0.0.1 and a free port, or on `bind` (port 53 for a resolver that reads resolv.conf).
 */
export async function startRbldnsd(zones: RbldnsdZone[], ttl = 60, bind?: { address: string; port: number }): Promise<Rbldnsd> {
  if (!rbldnsdAvailable()) throw new Error(`${RBLDNSD} is not installed (apt-get install rbldnsd)`);
  const dir = await mkdtemp(join(tmpdir(), 'postern-rbldnsd-'));
  // rbldnsd started as root may drop to its own user: let it read the files.
  await chmod(dir, 0o755);
  const specs: string[] = [];
  for (const [i, z] of zones.entries()) {
    const file = `zone${i}`;
    await writeFile(join(dir, file), `${z.lines.join('\n')}\n`, { mode: 0o644 });
    specs.push(`${z.name}:${z.type}:${file}`);
  }
  const address = bind?.address ?? '127.0.0.1';
  const port = bind?.port ?? (await freeUdpPort());
  const child: ChildProcess = spawn(RBLDNSD, ['-n', '-b', `${address}/${port}`, '-w', dir, '-t', String(ttl), '-a', '-c', '1h', ...specs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('rbldnsd did not start within 10 s')), 10_000);
    const onData = (d: Buffer): void => {
      log += d.toString();
      if (/ started /.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    };
    const fail = (err: Error): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${err.message}: ${log}`));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => fail(new Error(`rbldnsd exited (${code})`)));
    child.once('error', fail);
  });
  return {
    port,
    server: `${address}:${port}`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
