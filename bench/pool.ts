// What pre-greeted backend connections (backends.pool) save: sessions/s and whole-session
// latency through Postern with the pool off and on, in the same run, alternating, median
// of 3. Backend (POOL_BACKEND): `sink`, Postern's built-in one with identity xclient (it
// takes XCLIENT ADDR/PORT; its smtp-server greets after ~100 ms), or `smtp-sink`, Postfix's,
// with identity none (it offers only `XCLIENT NAME HELO`, so Postern will not XCLIENT it).
// Run: npm run build && node --import tsx bench/pool.ts   (needs Postfix's smtp-source)

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(process.cwd(), 'dist', 'cli.js');
const SESSIONS = Number(process.env.POOL_SESSIONS ?? 3000);
const SEQUENTIAL = Number(process.env.POOL_SEQUENTIAL ?? 300);
/** `sink` (Postern's built-in, identity xclient) or `smtp-sink` (Postfix's, identity none). */
const BACKEND = process.env.POOL_BACKEND === 'smtp-sink' ? 'smtp-sink' : 'sink';

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function started(child: ChildProcess, marker: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`not started: ${out}`)), 10_000);
    const on = (d: Buffer) => {
      out += d.toString();
      if (marker.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
  });
}

/** One whole SMTP session on a raw socket; resolves with its duration in ms. */
function session(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const s = net.connect(port, '127.0.0.1');
    const script = ['EHLO lat.test', 'MAIL FROM:<a@example.org>', 'RCPT TO:<b@example.net>', 'DATA', 'Subject: x\r\n\r\nhello\r\n.', 'QUIT'];
    let step = -1;
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      // Advance on each complete final reply line.
      while (/^\d{3} .*\r\n/m.test(buf)) {
        const m = /^(\d{3}) .*\r\n/m.exec(buf)!;
        buf = buf.slice(m.index + m[0].length);
        step++;
        if (step < script.length) s.write(script[step] + '\r\n');
      }
    });
    s.on('close', () => resolve(Number(process.hrtime.bigint() - t0) / 1e6));
    s.on('error', reject);
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-poolbench-'));
  const sinkPort = await freePort();
  const sink =
    BACKEND === 'sink'
      ? spawn(process.execPath, [CLI, 'sink', '--xclient', '--listen', `127.0.0.1:${sinkPort}`], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn('/usr/sbin/smtp-sink', ['-u', 'root', `127.0.0.1:${sinkPort}`, '1000'], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (BACKEND === 'sink') await started(sink, /listening|127\.0\.0\.1/);
  else await new Promise((r) => setTimeout(r, 300));
  const identity = BACKEND === 'sink' ? 'xclient' : 'none';
  const results: Record<'off' | 'on', { rate: number[]; p50: number[]; p99: number[] }> = {
    off: { rate: [], p50: [], p99: [] },
    on: { rate: [], p50: [], p99: [] },
  };
  try {
    for (let run = 0; run < 3; run++) {
      for (const mode of ['off', 'on'] as const) {
        const port = await freePort();
        const file = join(dir, `${mode}.yaml`);
        await writeFile(
          file,
          `hostname: bench.test\nworkers: 1\nlisteners:\n  - name: smtp\n    listen: 127.0.0.1:${port}\nbackends:\n  identity: ${identity}\n  pool: { idle: ${mode === 'on' ? 16 : 0} }\n  servers:\n    - address: 127.0.0.1:${sinkPort}\nlimits: { per_ip: { connections: 1000, rate: 1000000/1m }, max_connections: 100000, mailmax: null, rcptmax: null, rcptdomainmax: null }\nlog: { level: warn }\n`,
        );
        const postern = spawn(process.execPath, [CLI, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
        await new Promise((r) => setTimeout(r, 1200));
        const t0 = Date.now();
        await new Promise<void>((resolve, reject) =>
          execFile('/usr/sbin/smtp-source', ['-s', '20', '-m', String(SESSIONS), '-l', '1024', `127.0.0.1:${port}`], { timeout: 120_000 }, (err) => (err ? reject(err) : resolve())),
        );
        const rate = SESSIONS / ((Date.now() - t0) / 1000);
        const lat: number[] = [];
        for (let i = 0; i < SEQUENTIAL; i++) lat.push(await session(port));
        results[mode].rate.push(rate);
        results[mode].p50.push(pct(lat, 50));
        results[mode].p99.push(pct(lat, 99));
        postern.kill('SIGTERM');
        await new Promise((r) => postern.once('exit', r));
        process.stderr.write(`run ${run + 1} pool ${mode}: ${rate.toFixed(0)} sessions/s, p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms\n`);
      }
    }
  } finally {
    sink.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
  const off = results.off;
  const on = results.on;
  const row = (name: string, r: typeof off) => `| ${name} | ${median(r.rate).toFixed(0)} | ${median(r.p50).toFixed(2)} | ${median(r.p99).toFixed(2)} |`;
  console.log(`\n## Pre-greeted backend connections (identity ${identity}, ${BACKEND === 'sink' ? "Postern's built-in sink" : "Postfix's smtp-sink"}; ${SESSIONS} sessions by smtp-source -s 20; latency over ${SEQUENTIAL} sequential sessions; median of 3)\n`);
  console.log('| backends.pool | sessions/s | session p50 ms | session p99 ms |');
  console.log('|:--|--:|--:|--:|');
  console.log(row('idle: 0 (off)', off));
  console.log(row('idle: 16', on));
  console.log(`\nratio on/off: sessions/s ${(median(on.rate) / median(off.rate)).toFixed(2)}x, p50 latency ${(median(on.p50) / median(off.p50)).toFixed(2)}x`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
