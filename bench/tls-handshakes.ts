// Full vs resumed TLS handshakes per second against a TlsTerminator on an implicit-TLS listener:
// TLS 1.2 and 1.3, RSA-2048 and ECDSA P-256, median of 3 runs. The load comes from child processes
// (Node TLS clients, a fixed number of connections in flight each); the server is this process.
// Also: TLS 1.3 full handshakes with the session cache on vs off (it should cost TLS 1.3 nothing),
// and TLS 1.2 by session ID (clients without tickets) with the host's session cache in this process
// (a single process, and what each worker had before issue 18) vs in another process asked over
// IPC (what a cluster worker does: the cache holder runs the primary's code): server CPU per
// handshake (this process + the holder) and the latency of one client's sequential handshakes.
//   node --import tsx bench/tls-handshakes.ts
// Environment: BENCH_TLS_SECONDS (per run, default 2.5), BENCH_TLS_PROCS (default 2), BENCH_TLS_INFLIGHT (per process, default 8),
// BENCH_TLS_LATENCY (sequential handshakes per latency figure, default 400), BENCH_TLS_ONLY=session-id (that section alone).
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { TlsConfig } from '../src/config/types.js';
import { answerTlsSession, IpcSessionStore, type TlsSessionReply, type TlsSessionRequest } from '../src/server/cluster/tls-sessions.js';
import { HostSessionCache, TlsTerminator, type SessionStore } from '../src/tls/index.js';
import { makePki, type Leaf } from '../test/helpers/certs.js';

type Version = 'TLSv1.2' | 'TLSv1.3';
type Mode = 'full' | 'resumed';

interface WorkerJob {
  port: number;
  version: Version;
  mode: Mode;
  startAt: number;
  durationMs: number;
  inflight: number;
  /** TLS 1.2 clients that send no SessionTicket extension: they resume by session ID. */
  noTicket?: boolean;
  /** Latency mode: this many sequential handshakes, one at a time, timed one by one. */
  sequential?: number;
}

interface WorkerResult {
  handshakes: number;
  reused: number;
  errors: number;
  /** Latency mode: each handshake's time from connect() to secureConnect, in µs. */
  latencies?: number[];
}

const SECONDS = Number(process.env.BENCH_TLS_SECONDS ?? 2.5);
const PROCS = Number(process.env.BENCH_TLS_PROCS ?? 2);
const INFLIGHT = Number(process.env.BENCH_TLS_INFLIGHT ?? 8);
const LATENCY_COUNT = Number(process.env.BENCH_TLS_LATENCY ?? 400);
const RUNS = 3;

// ---------- load generator (child process) ----------

function handshake(job: WorkerJob, session: Buffer | undefined, wantSession: boolean): Promise<{ reused: boolean; session?: Buffer }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: job.port,
      rejectUnauthorized: false,
      minVersion: job.version,
      maxVersion: job.version,
      session,
      ...(job.noTicket ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}),
    });
    const timer = setTimeout(() => done(new Error('handshake timeout')), 10_000);
    const done = (err?: Error, got?: Buffer) => {
      clearTimeout(timer);
      const reused = s.isSessionReused();
      // A graceful close that reads to the end: a reset (closing with unread tickets) could reach the
      // server before the client's Finished and fail the handshake it just paid for.
      if (err) s.destroy();
      else {
        s.end();
        s.resume();
      }
      if (err) reject(err);
      else resolve({ reused, session: got });
    };
    s.on('error', (e) => done(e));
    if (wantSession) {
      // TLS 1.3 tickets come after the handshake; TLS 1.2's session is complete with it.
      if (job.version === 'TLSv1.3') {
        s.once('session', (b: Buffer) => done(undefined, b));
        s.resume(); // tickets are only processed while reading
      }
      else s.once('secureConnect', () => done(undefined, s.getSession()));
    } else s.once('secureConnect', () => done());
  });
}

async function worker(job: WorkerJob): Promise<void> {
  const session = job.mode === 'resumed' ? (await handshake(job, undefined, true)).session : undefined;
  const res: WorkerResult = { handshakes: 0, reused: 0, errors: 0 };
  if (job.sequential) {
    res.latencies = [];
    for (let i = 0; i < job.sequential; i++) {
      const t0 = process.hrtime.bigint();
      try {
        const r = await handshake(job, session, false);
        res.latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
        res.handshakes++;
        if (r.reused) res.reused++;
      } catch {
        res.errors++;
      }
    }
    process.stdout.write(JSON.stringify(res) + '\n');
    return;
  }
  await new Promise((r) => setTimeout(r, Math.max(0, job.startAt - Date.now())));
  const end = job.startAt + job.durationMs;
  const loop = async () => {
    while (Date.now() < end) {
      try {
        const r = await handshake(job, session, false);
        if (Date.now() > end) break;
        res.handshakes++;
        if (r.reused) res.reused++;
      } catch {
        res.errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: job.inflight }, loop));
  process.stdout.write(JSON.stringify(res) + '\n');
}

// ---------- driver ----------

function runWorker(job: WorkerJob): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--worker', JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), job.startAt - Date.now() + job.durationMs + 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out) as WorkerResult);
      else reject(new Error(`load generator exited with ${code}`));
    });
  });
}

interface Sample {
  /** Handshakes per wall-clock second, as the clients counted them. */
  rate: number;
  /** Handshakes the server completed per second of its own CPU time: robust to clients and neighbours competing for cores. */
  perCpu: number;
  /** Share of that CPU spent in the session cache holder (another process). */
  holderShare: number;
}

async function measure(target: Target, version: Version, mode: Mode, noTicket = false): Promise<Sample> {
  // Time for the children to start (tsx) and, when resuming, to fetch their session.
  const job: WorkerJob = { port: target.port, version, mode, startAt: Date.now() + 1500, durationMs: SECONDS * 1000, inflight: INFLIGHT, noTicket };
  let start: { cpu: NodeJS.CpuUsage; n: number; holder: Promise<number> } | null = null;
  let server: { cpu: number; n: number; holder: Promise<number> } | null = null;
  const t1 = setTimeout(() => (start = { cpu: process.cpuUsage(), n: target.accepted, holder: target.holderCpu() }), job.startAt - Date.now());
  const t2 = setTimeout(() => {
    if (!start) return;
    const cpu = process.cpuUsage(start.cpu);
    server = { cpu: (cpu.user + cpu.system) / 1e6, n: target.accepted - start.n, holder: target.holderCpu() };
  }, job.startAt + job.durationMs - Date.now());
  const results = await Promise.all(Array.from({ length: PROCS }, () => runWorker(job)));
  // Children exit just after their window; the window-end sample may not have run yet.
  await new Promise((r) => setTimeout(r, Math.max(0, job.startAt + job.durationMs - Date.now() + 5)));
  clearTimeout(t1);
  clearTimeout(t2);
  const total = results.reduce((a, r) => a + r.handshakes, 0);
  const reused = results.reduce((a, r) => a + r.reused, 0);
  const errors = results.reduce((a, r) => a + r.errors, 0);
  if (errors > 0) process.stderr.write(`  (${errors} failed handshakes)\n`);
  if (mode === 'resumed' && reused < total) process.stderr.write(`  warning: ${total - reused} of ${total} were not resumed\n`);
  if (mode === 'full' && reused > 0) process.stderr.write(`  warning: ${reused} full-mode handshakes were resumed\n`);
  const s0 = start as { holder: Promise<number> } | null;
  const srv = server as { cpu: number; n: number; holder: Promise<number> } | null;
  const holder = s0 && srv ? (await srv.holder) - (await s0.holder) : 0;
  const cpu = srv ? srv.cpu + holder : 0;
  return { rate: total / SECONDS, perCpu: srv && cpu > 0 ? srv.n / cpu : NaN, holderShare: cpu > 0 ? holder / cpu : 0 };
}

/** One client, one handshake at a time: per-handshake latency percentiles in µs. */
async function latency(target: Target, version: Version, mode: Mode, noTicket: boolean): Promise<{ p50: number; p90: number; p99: number; reused: number; n: number }> {
  const job: WorkerJob = { port: target.port, version, mode, startAt: Date.now(), durationMs: 60_000, inflight: 1, noTicket, sequential: LATENCY_COUNT };
  const r = await runWorker(job);
  const xs = [...(r.latencies ?? [])].sort((a, b) => a - b);
  const q = (p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), reused: r.reused, n: r.handshakes };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Target {
  name: string;
  port: number;
  /** Handshakes completed by the server so far. */
  accepted: number;
  /** CPU seconds used so far by the process holding the session cache, when it is not this one. */
  holderCpu(): Promise<number>;
  stop(): Promise<void>;
}

async function startTarget(name: string, leaf: Leaf, cacheSize: number, sessionStore?: SessionStore): Promise<Target> {
  const cfg: TlsConfig = {
    certificates: [{ cert: leaf.cert, key: leaf.key }],
    acme: null,
    watch: { interval: 0, expiry_warning: 0 },
    min_version: 'TLSv1.2',
    session_tickets: true,
    ticket_keys: { file: null, rotate: 3600_000, lifetime: 7200_000 },
    session_cache: { size: cacheSize, lifetime: 7200_000, file: null },
  };
  const term = await TlsTerminator.create(cfg, {
    logger: { info: () => undefined, warn: (o, m) => process.stderr.write(`warn: ${m} ${JSON.stringify(o)}\n`) },
    sessionStore,
  });
  if (term.ticketMode !== 'callback') process.stderr.write(`note: ticket mode is ${term.ticketMode}\n`);
  const target: Target = { name, port: 0, accepted: 0, holderCpu: async () => 0, stop: async () => undefined };
  const server = net.createServer((raw) => {
    raw.on('error', () => undefined);
    raw.pause();
    term.accept(raw, { timeoutMs: 10_000 }).then(
      ({ socket }) => {
        target.accepted++;
        // The client closes. Ending here at once would suppress the TLS 1.3 tickets, which OpenSSL
        // writes on the next I/O round after 'secure'.
        socket.on('error', () => undefined);
        socket.on('end', () => socket.end());
        socket.resume();
      },
      () => undefined,
    );
  });
  server.maxConnections = 10_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', 1024, r));
  target.port = (server.address() as net.AddressInfo).port;
  target.stop = () =>
    new Promise<void>((r) => {
      term.close();
      server.close(() => r());
    });
  return target;
}

// ---------- the session cache holder (child process): what a cluster primary does for its workers ----------

type HolderMessage = TlsSessionRequest | { postern: 'cpu?' };

function holder(): void {
  const cache = new HostSessionCache({ size: 20_000, ttlMs: 7200_000 });
  process.on('message', (m: HolderMessage) => {
    if (m.postern === 'cpu?') {
      const c = process.cpuUsage();
      process.send!({ postern: 'cpu', seconds: (c.user + c.system) / 1e6 });
    } else if (m.postern === 'tls-session') answerTlsSession(cache, m, (r) => process.send!(r));
  });
  process.on('disconnect', () => process.exit(0));
}

/** A target whose session cache is in a child process, asked over IPC as a cluster worker asks its primary. */
async function startIpcTarget(name: string, leaf: Leaf): Promise<Target> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--holder'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const cpuWaiters: ((s: number) => void)[] = [];
  const replyHandlers: ((m: TlsSessionReply) => void)[] = [];
  child.on('message', (m: TlsSessionReply | { postern: 'cpu'; seconds: number }) => {
    if (m.postern === 'cpu') cpuWaiters.shift()?.(m.seconds);
    else for (const h of replyHandlers) h(m);
  });
  const store = new IpcSessionStore({ send: (m) => child.send(m), onReply: (h) => replyHandlers.push(h) });
  const t = await startTarget(name, leaf, 20_000, store);
  t.holderCpu = () =>
    new Promise((resolve) => {
      cpuWaiters.push(resolve);
      child.send({ postern: 'cpu?' });
    });
  const stop = t.stop;
  t.stop = async () => {
    await stop();
    child.disconnect();
  };
  return t;
}

async function sessionIdSection(ec: Leaf, targets: Target[]): Promise<void> {
  const local = await startTarget('in this process', ec, 20_000);
  const ipc = await startIpcTarget('over IPC', ec);
  targets.push(local, ipc);
  const kinds = [local, ipc];
  const modes = ['full', 'resumed'] as const;
  const samples = new Map<string, Sample[]>();
  process.stderr.write(`session ID: ${kinds.length * modes.length} cells x ${RUNS} runs x ${SECONDS} s, then ${LATENCY_COUNT} sequential handshakes per cell\n`);
  for (let run = 0; run < RUNS; run++) {
    for (const target of kinds) {
      for (const mode of modes) {
        const r = await measure(target, 'TLSv1.2', mode, true);
        const key = `${target.name} ${mode}`;
        samples.set(key, [...(samples.get(key) ?? []), r]);
        process.stderr.write(`run ${run + 1}: TLS 1.2 session ID, cache ${key}: ${r.rate.toFixed(0)}/s, ${r.perCpu.toFixed(0)} per server CPU-s\n`);
      }
    }
  }
  const lat = new Map<string, Awaited<ReturnType<typeof latency>>>();
  for (const target of kinds) {
    for (const mode of modes) {
      const l = await latency(target, 'TLSv1.2', mode, true);
      lat.set(`${target.name} ${mode}`, l);
      if (mode === 'resumed' && l.reused < l.n) process.stderr.write(`  warning: ${l.n - l.reused} of ${l.n} sequential handshakes were not resumed\n`);
    }
  }
  const rows = [['cache', 'handshake', '/s', 'server µs CPU each', 'of it, holder', 'latency p50 µs', 'p90', 'p99']];
  for (const target of kinds) {
    for (const mode of modes) {
      const key = `${target.name} ${mode}`;
      const xs = samples.get(key)!;
      const l = lat.get(key)!;
      rows.push([
        target.name,
        mode,
        median(xs.map((x) => x.rate)).toFixed(0),
        (1e6 / median(xs.map((x) => x.perCpu))).toFixed(0),
        `${(100 * median(xs.map((x) => x.holderShare))).toFixed(0)} %`,
        l.p50.toFixed(0),
        l.p90.toFixed(0),
        l.p99.toFixed(0),
      ]);
    }
  }
  console.log(
    `\nTLS 1.2 by session ID (clients without tickets), ECDSA P-256: the host's session cache in this process vs in another one asked over IPC ` +
      `(a cluster worker and its primary). Throughput: median of ${RUNS} runs, ${PROCS} client processes x ${INFLIGHT} in flight; ` +
      `server CPU = this process + the cache holder. Latency: one client, ${LATENCY_COUNT} handshakes one after another, connect() to secureConnect.\n`,
  );
  table(rows);
  const cost = (name: string, k: 'cpu' | 'p50') => {
    const key = `${name} resumed`;
    return k === 'cpu' ? 1e6 / median(samples.get(key)!.map((x) => x.perCpu)) : lat.get(key)!.p50;
  };
  console.log(
    `\nresumed by session ID over IPC vs in process: ${(cost(ipc.name, 'cpu') - cost(local.name, 'cpu')).toFixed(0)} µs CPU and ` +
      `${(cost(ipc.name, 'p50') - cost(local.name, 'p50')).toFixed(0)} µs latency (p50) more per handshake`,
  );
}

function table(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(rows[0]!));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows.slice(1)) console.log(line(r));
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const pki = await makePki();
  const targets: Target[] = [];
  try {
    const [rsa, ec] = await Promise.all([pki.leaf('bench-rsa', 'rsa', ['bench.example']), pki.leaf('bench-ec', 'ecdsa', ['bench.example'])]);
    if (process.env.BENCH_TLS_ONLY !== 'session-id') await handshakeSection(rsa, ec, targets);
    await sessionIdSection(ec, targets);
    console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    for (const t of targets) await t.stop();
    await pki.cleanup();
  }
}

async function handshakeSection(rsa: Leaf, ec: Leaf, targets: Target[]): Promise<void> {
  const rsaT = await startTarget('RSA-2048', rsa, 20_000);
  const ecT = await startTarget('ECDSA P-256', ec, 20_000);
  const ecNoCache = await startTarget('ECDSA P-256, no session cache', ec, 0);
  targets.push(rsaT, ecT, ecNoCache);

  const cells: { target: Target; version: Version; mode: Mode }[] = [];
  for (const target of [rsaT, ecT]) for (const version of ['TLSv1.2', 'TLSv1.3'] as const) for (const mode of ['full', 'resumed'] as const) cells.push({ target, version, mode });
  cells.push({ target: ecNoCache, version: 'TLSv1.3', mode: 'full' });
  const samples = new Map<(typeof cells)[number], Sample[]>(cells.map((c) => [c, []]));
  process.stderr.write(`${cells.length} cells x ${RUNS} runs x ${SECONDS} s, ${PROCS} client processes x ${INFLIGHT} in flight\n`);
  // Runs interleaved so drift (thermal, other load) spreads over every cell alike.
  for (let run = 0; run < RUNS; run++) {
    for (const c of cells) {
      const r = await measure(c.target, c.version, c.mode);
      samples.get(c)!.push(r);
      process.stderr.write(`run ${run + 1}: ${c.target.name} ${c.version} ${c.mode}: ${r.rate.toFixed(0)}/s, ${r.perCpu.toFixed(0)} per server CPU-s\n`);
    }
  }
  const med = (target: Target, version: Version, mode: Mode, k: 'rate' | 'perCpu') =>
    median(samples.get(cells.find((c) => c.target === target && c.version === version && c.mode === mode)!)!.map((x) => x[k]));

  const rows = [['certificate', 'TLS', 'full/s', 'resumed/s', 'ratio', 'full/CPU-s', 'resumed/CPU-s', 'ratio']];
  for (const target of [rsaT, ecT]) {
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const [f, r] = [med(target, version, 'full', 'rate'), med(target, version, 'resumed', 'rate')];
      const [fc, rc] = [med(target, version, 'full', 'perCpu'), med(target, version, 'resumed', 'perCpu')];
      rows.push([target.name, version, f.toFixed(0), r.toFixed(0), `${(r / f).toFixed(2)}x`, fc.toFixed(0), rc.toFixed(0), `${(rc / fc).toFixed(2)}x`]);
    }
  }
  console.log(`\nTLS handshakes (median of ${RUNS} runs of ${SECONDS} s; ${PROCS} client processes x ${INFLIGHT} in flight; server: one Node ${process.version} process)`);
  console.log('/s = per wall-clock second as the clients saw it; /CPU-s = completed per second of server CPU time\n');
  table(rows);
  const on = med(ecT, 'TLSv1.3', 'full', 'perCpu');
  const off = med(ecNoCache, 'TLSv1.3', 'full', 'perCpu');
  console.log(
    `\nTLS 1.3 full handshakes, ECDSA, per server CPU-s: session cache on (TLS 1.3 clients get the listener-less sink) ${on.toFixed(0)} vs off ${off.toFixed(0)} (${(on / off).toFixed(2)}x)`,
  );
}

const workerAt = process.argv.indexOf('--worker');
if (process.argv.includes('--holder')) {
  holder();
} else if (workerAt >= 0) {
  worker(JSON.parse(process.argv[workerAt + 1]!) as WorkerJob).catch((err: unknown) => {
    process.stderr.write(`worker: ${String(err)}\n`);
    process.exit(1);
  });
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
