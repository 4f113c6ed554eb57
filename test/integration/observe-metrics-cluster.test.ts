// Metrics across cluster workers: histograms and counters must add up over the workers
// exactly as if one process had seen every record. First with two real cluster workers fed
// known records, then with `postern run` and `workers: 2`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import cluster, { type Worker } from 'node:cluster';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import { Metrics } from '../../src/observe/metrics.js';
import { observeHealthCheck, observeSession, observeTransaction } from '../../src/observe/record-metrics.js';
import { sessionRecord, transactionRecord, type SessionRecord, type TransactionRecord } from '../../src/observe/records.js';
import { startSink, type Sink } from '../../src/sink/index.js';
import type { WorkerFeed } from '../helpers/metrics-worker.js';
import { freePort } from '../helpers/net.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const CLI = join(process.cwd(), 'dist', 'cli.js');
const WORKER = fileURLToPath(new URL('../helpers/metrics-worker.ts', import.meta.url));

/** Prometheus text -> { 'name{labels}': value } (labels sorted, so order does not matter). */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || !m[1]!.startsWith('postern_')) continue;
    const labels = (m[2] ?? '').split(/,(?=[a-z_]+=")/).filter(Boolean).sort().join(',');
    out.set(`${m[1]}{${labels}}`, Number(m[3]));
  }
  return out;
}

/** Deterministic records with spread-out values (mulberry32, so every run is the same). */
function records(n: number): { sessions: SessionRecord[]; transactions: TransactionRecord[] } {
  let x = 12345;
  const rnd = (k: number) => {
    x = (x + 0x6d2b79f5) | 0;
    let t = Math.imul(x ^ (x >>> 15), 1 | x);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) % k;
  };
  const backends = ['10.0.0.11:25', '10.0.0.12:25'];
  const kinds = [[], [], ['no_quit'], ['rst_after_quit'], ['pregreet', 'no_quit'], ['bare_lf']] as const;
  const replies = ['250 2.0.0 Ok: queued as ABC', '451 4.3.0 Try later', '554 5.7.1 Rejected', '250 OK id=1xyz'];
  const sessions: SessionRecord[] = [];
  const transactions: TransactionRecord[] = [];
  for (let i = 0; i < n; i++) {
    const backend = backends[rnd(2)]!;
    sessions.push(
      sessionRecord({
        conn: `c${i}`,
        client: { address: '192.0.2.1', port: 1000 + i },
        listener: 'smtp',
        proxy: null,
        duration_ms: rnd(4) === 0 ? rnd(900_000) : rnd(3000),
        close: 'quit',
        anomalies: [...kinds[rnd(kinds.length)]!],
        backend: rnd(3) === 0 ? null : { address: backend, identity: 'xclient', handshake_ms: rnd(400) / 7 },
      }),
    );
    if (rnd(4) !== 0) {
      transactions.push(
        transactionRecord({
          conn: `c${i}`,
          from: 'a@example.org',
          rcpts: 1,
          size: rnd(2) === 0 ? rnd(5000) : rnd(60_000_000),
          reply: replies[rnd(replies.length)]!,
          backend,
          queue_id: null,
          recipients: [],
        }),
      );
    }
  }
  return { sessions, transactions };
}

function once<T>(w: Worker, pred: (m: T) => boolean): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: T) => {
      if (!pred(m)) return;
      w.off('message', on);
      resolve(m);
    };
    w.on('message', on);
  });
}

describe('metrics summed over cluster workers', () => {
  it('two workers fed 600 records between them expose what one process seeing all 600 would', async () => {
    const all = records(600);
    const checks: [string, 'ok' | 'failed'][] = Array.from({ length: 50 }, (_, i) => ['10.0.0.11:25', i % 7 === 0 ? 'failed' : 'ok']);
    // An uneven split: a third to one worker, the rest to the other.
    const feeds: WorkerFeed[] = [0, 1].map((w) => ({
      sessions: all.sessions.filter((_, i) => (i % 3 === 0) === (w === 0)),
      transactions: all.transactions.filter((_, i) => (i % 3 === 0) === (w === 0)),
      checks: checks.filter((_, i) => (i % 3 === 0) === (w === 0)),
    }));
    assert.ok(feeds.every((f) => f.sessions.length > 100 && f.transactions.length > 50), feeds.map((f) => `${f.sessions.length}/${f.transactions.length}`).join(' '));

    cluster.setupPrimary({ exec: WORKER, silent: true });
    const workers = [cluster.fork(), cluster.fork()];
    try {
      await Promise.all(workers.map((w) => once<{ ready?: boolean }>(w, (m) => m.ready === true)));
      await Promise.all(workers.map((w, i) => {
        const fed = once<{ fed?: boolean }>(w, (m) => m.fed === true);
        w.send({ feed: feeds[i] });
        return fed;
      }));
      const aggregated = series(await new AggregatorRegistry().clusterMetrics());

      const one = new Metrics();
      for (const s of all.sessions) observeSession(one, s);
      for (const t of all.transactions) observeTransaction(one, t);
      for (const [b, r] of checks) observeHealthCheck(one, b, r);
      const expected = series(await one.registry.metrics());

      for (const name of ['postern_session_duration_seconds_count', 'postern_message_size_bytes_count', 'postern_backend_handshake_seconds_count']) {
        assert.ok([...expected.keys()].some((k) => k.startsWith(name) && expected.get(k)! > 0), `${name} observed`);
      }
      assert.deepEqual([...aggregated.keys()].sort(), [...expected.keys()].sort());
      for (const [k, v] of expected) {
        const got = aggregated.get(k)!;
        // Sums of floats added in another order may differ in the last bits.
        assert.ok(Math.abs(got - v) <= 1e-9 * Math.max(1, Math.abs(v)), `${k}: ${got} summed over workers, ${v} in one process`);
      }
      assert.equal(aggregated.get('postern_sessions_total{severity="none"}')! + aggregated.get('postern_sessions_total{severity="notice"}')! + aggregated.get('postern_sessions_total{severity="warning"}')!, 600);
      assert.equal(aggregated.get('postern_health_checks_total{backend="10.0.0.11:25",pool="default",result="failed"}'), 8);
    } finally {
      for (const w of workers) w.kill();
    }
  });
});

describe('postern run with workers: 2', { skip: !existsSync(CLI) && 'dist/cli.js missing: run `npm run build`' }, () => {
  let sink: Sink;
  let dir: string;
  before(async () => {
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-metrics-cluster-'));
  });
  after(async () => {
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function run(file: string) {
    const child = spawn(process.execPath, [CLI, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    const deadline = Date.now() + 15_000;
    while (!out.includes('2 workers running')) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`cluster did not start: ${out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return { child, exit, output: () => out };
  }

  it('/metrics shows the host\'s health checks once (the primary runs them) and every histogram family', async () => {
    const port = await freePort();
    const mport = await freePort();
    const file = join(dir, 'metrics.yaml');
    const backend = `127.0.0.1:${sink.address().port}`;
    // A long interval: the primary makes exactly its first check while the test runs.
    await writeFile(
      file,
      `hostname: cluster.test\nworkers: 2\nlisteners:\n  - name: smtp\n    listen: 127.0.0.1:${port}\nbackends:\n  health_check: { interval: 10m }\n  servers:\n    - address: ${backend}\nmetrics: { listen: 127.0.0.1:${mport} }\n`,
    );
    const { child, exit } = await run(file);
    try {
      for (let i = 0; i < 4; i++) {
        const c = await SmtpClient.connect(port, { localAddress: '127.0.0.4' });
        assert.equal((await sendMessage(c, { helo: `m${i}.test` })).code, 250);
      }
      await new Promise((r) => setTimeout(r, 200));
      const text = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
      const s = series(text);
      assert.equal(s.get(`postern_health_checks_total{backend="${backend}",pool="default",result="ok"}`), 1, 'one first check for the host, not one per worker');
      assert.equal(s.get(`postern_backend_up{backend="${backend}",pool="default"}`), 1);
      for (const family of ['postern_health_checks_total', 'postern_backend_up']) {
        assert.equal(text.split('\n').filter((l) => l.startsWith(`# TYPE ${family} `)).length, 1, `${family}: one family, not the workers' and the primary's`);
      }
      assert.equal(s.get('postern_messages_total{result="accepted"}'), 4);
      for (const family of ['postern_session_duration_seconds', 'postern_message_size_bytes', 'postern_backend_handshake_seconds']) {
        assert.match(text, new RegExp(`# TYPE ${family} histogram`));
      }
      for (const sev of ['none', 'notice', 'warning']) assert.ok(s.has(`postern_sessions_total{severity="${sev}"}`), sev);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exit, 0);
    }
  });

  it(
    'session and transaction metrics count every session and message over both workers',
    async () => {
      const port = await freePort();
      const mport = await freePort();
      const file = join(dir, 'metrics-sessions.yaml');
      const backend = `127.0.0.1:${sink.address().port}`;
      await writeFile(
        file,
        `hostname: cluster.test\nworkers: 2\nlisteners:\n  - name: smtp\n    listen: 127.0.0.1:${port}\nbackends:\n  servers:\n    - address: ${backend}\nlimits: { per_ip: { rate: 10000/1m } }\nmetrics: { listen: 127.0.0.1:${mport} }\n`,
      );
      const { child, exit, output } = await run(file);
      try {
        // The kernel hands each connection to one worker (not in turn): at least 12 sessions, and
        // on until both workers have served (at most 60).
        const sessions = () => output().split('\n').filter((l) => l.includes('"event":"session"'));
        const served = () => new Set(sessions().map((l) => (JSON.parse(l) as { conn: string }).conn.slice(0, 6))).size;
        let n = 0;
        while (n < 12 || (n < 60 && served() < 2)) {
          const c = await SmtpClient.connect(port, { localAddress: '127.0.0.4' });
          assert.equal((await sendMessage(c, { helo: `s${n}.test` })).code, 250);
          await c.waitClose();
          n++;
        }
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(sessions().length, n);
        assert.equal(served(), 2, `both workers served (${n} sessions)`);
        const s = series(await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text());
        assert.equal(s.get('postern_session_duration_seconds_count{}'), n);
        assert.equal(s.get('postern_sessions_total{severity="none"}'), n);
        assert.equal(s.get('postern_message_size_bytes_count{}'), n);
        assert.equal(s.get(`postern_backend_messages_total{backend="${backend}",pool="default",result="accepted"}`), n);
        assert.equal(s.get(`postern_backend_handshake_seconds_count{backend="${backend}",pool="default"}`), n);
      } finally {
        child.kill('SIGTERM');
        assert.equal(await exit, 0);
      }
    },
  );
});
