// `workers: 2`: a cluster behind one listener. Per-IP caps are held by the primary, so
// they hold however the kernel spreads connections over the workers.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki } from '../helpers/certs.js';
import { freePort } from '../helpers/net.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const CLI = join(process.cwd(), 'dist', 'cli.js');


/** conn ids start with a random per-process prefix: which worker holds each session. */
async function liveWorkers(metricsPort: number): Promise<Map<string, number>> {
  const body = (await (await fetch(`http://127.0.0.1:${metricsPort}/sessions`)).json()) as { sessions: { conn: string; client: { address: string } }[] };
  const byWorker = new Map<string, number>();
  for (const s of body.sessions) byWorker.set(s.conn.slice(0, 6), (byWorker.get(s.conn.slice(0, 6)) ?? 0) + 1);
  return byWorker;
}

/** One session from `localAddress`: the greeting's first line and code, then QUIT (when greeted) and the close. */
async function greetAndQuit(port: number, localAddress: string): Promise<{ code: number; text: string }> {
  const c = await SmtpClient.connect(port, { localAddress });
  const [greeting] = await c.waitReplies(1);
  if (greeting!.code === 220) await c.cmd('QUIT');
  await c.waitClose();
  return { code: greeting!.code, text: greeting!.lines[0] ?? '' };
}

/** `postern run` in a child process, resolved once its primary reports every worker running. */
async function startCluster(file: string): Promise<{ child: ChildProcess; output: () => string; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'run', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const deadline = Date.now() + 10_000;
  while (!out.includes('2 workers running')) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`cluster did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, output: () => out, exit };
}

describe('cluster (workers: 2)', { skip: !existsSync(CLI) && 'dist/cli.js missing: run `npm run build`' }, () => {
  let sink: Sink;
  let dir: string;
  before(async () => {
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-cluster-'));
  });
  after(async () => {
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A 2-worker config with one plain listener on `port` relaying to the sink, plus `extra` top-level YAML. */
  async function clusterFile(name: string, port: number, extra = ''): Promise<string> {
    const file = join(dir, `${name}.yaml`);
    await writeFile(
      file,
      `hostname: cluster.test
workers: 2
listeners:
  - name: smtp
    listen: 127.0.0.1:${port}
backends:
  servers:
    - address: 127.0.0.1:${sink.address().port}
${extra}`,
    );
    return file;
  }

  it('per-IP connection caps hold across workers; metrics are summed over workers', async () => {
    const port = await freePort();
    const mport = await freePort();
    const file = await clusterFile('cluster', port, `limits: { per_ip: { connections: 4, rate: 10000/1m } }\nmetrics: { listen: 127.0.0.1:${mport} }\n`);
    const { child, exit } = await startCluster(file);
    try {
      // Open the four allowed connections from one address until they sit on both workers.
      let spread = false;
      for (let attempt = 0; attempt < 12 && !spread; attempt++) {
        const open: SmtpClient[] = [];
        for (let i = 0; i < 4; i++) {
          const c = await SmtpClient.connect(port, { localAddress: '127.0.0.2' });
          assert.equal((await c.waitReplies(1))[0]!.code, 220);
          open.push(c);
        }
        await new Promise((r) => setTimeout(r, 1100)); // workers report every second
        const workers = await liveWorkers(mport);
        spread = workers.size === 2;
        if (spread) {
          // A fifth from the same address is refused, whichever worker takes it.
          for (let i = 0; i < 3; i++) {
            const extra = await SmtpClient.connect(port, { localAddress: '127.0.0.2' });
            const [r] = await extra.waitReplies(1);
            assert.equal(r!.code, 421, 'the cap counts connections on both workers');
            await extra.waitClose();
          }
          const other = await SmtpClient.connect(port, { localAddress: '127.0.0.3' });
          assert.equal((await sendMessage(other, { helo: 'other.test' })).code, 250);
        }
        for (const c of open) {
          await c.cmd('QUIT');
          await c.waitClose();
        }
      }
      assert.ok(spread, 'connections never landed on both workers');
      await new Promise((r) => setTimeout(r, 300));
      const metrics = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
      const total = Number(/postern_connections_total\{listener="smtp"\} (\d+)/.exec(metrics)?.[1]);
      const refusedCount = Number(/postern_limit_rejections_total\{limit="per_ip_connections"\} (\d+)/.exec(metrics)?.[1]);
      assert.ok(total >= 8, `connections summed over workers: ${total}`);
      assert.equal(refusedCount, 3);
      assert.match(metrics, /postern_messages_total\{result="accepted"\} 1/);
      // After the clients left, their slots are free again on every worker.
      const again = await SmtpClient.connect(port, { localAddress: '127.0.0.2' });
      assert.equal((await again.waitReplies(1))[0]!.code, 220);
      again.destroy();
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exit, 0);
    }
  });

  it('leased admissions (issue 26) keep the default per-IP caps exact: 20 open from one address on both workers, the 21st refused, 5 rounds; a rate of 30 admits exactly 30', async () => {
    const port = await freePort();
    const mport = await freePort();
    // per_ip.connections 20 is the default: the room a lease is drawn from.
    const file = await clusterFile('cluster-lease', port, `metrics: { listen: 127.0.0.1:${mport} }\n`);
    const { child, exit } = await startCluster(file);
    try {
      let spreadRounds = 0;
      for (let round = 0; round < 5; round++) {
        const open: SmtpClient[] = [];
        for (let i = 0; i < 20; i++) {
          const c = await SmtpClient.connect(port, { localAddress: '127.0.0.6' });
          assert.equal((await c.waitReplies(1))[0]!.code, 220, `round ${round}: connection ${i + 1} of the 20 allowed is greeted`);
          open.push(c);
        }
        const extra = await SmtpClient.connect(port, { localAddress: '127.0.0.6' });
        assert.equal((await extra.waitReplies(1))[0]!.code, 421, `round ${round}: the 21st is refused`);
        await extra.waitClose();
        await new Promise((r) => setTimeout(r, 1100)); // workers report every second
        if ((await liveWorkers(mport)).size === 2) spreadRounds++;
        for (const c of open) {
          await c.cmd('QUIT');
          await c.waitClose();
        }
        await new Promise((r) => setTimeout(r, 300)); // releases reach the primary
      }
      assert.ok(spreadRounds >= 1, 'in some round the 20 sat on both workers');
      const metrics = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
      assert.equal(Number(/postern_limit_rejections_total\{limit="per_ip_connections"\} (\d+)/.exec(metrics)?.[1]), 5);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exit, 0);
    }

    // The rate: leases pre-pay rate slots; what is not spent is given back (or recalled) and counts no more.
    const rateFile = await clusterFile('cluster-lease-rate', port, 'limits: { per_ip: { connections: 1000, rate: 30/1m } }\n');
    const rated = await startCluster(rateFile);
    try {
      const codes: number[] = [];
      for (let i = 0; i < 33; i++) {
        codes.push((await greetAndQuit(port, '127.0.0.7')).code);
        // Now and then a pause past the lease idle time, so leases are also given back unasked.
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 400));
      }
      assert.deepEqual(codes.slice(0, 30).filter((c) => c !== 220), [], `the first 30 are greeted: ${codes.join(' ')}`);
      assert.deepEqual(codes.slice(30), [421, 421, 421], 'then the rate refuses');
    } finally {
      rated.child.kill('SIGTERM');
      assert.equal(await rated.exit, 0);
    }
  });

  it('a client that closes and reconnects at once is not refused by per_ip.connections: 1 (release before admit)', async () => {
    const port = await freePort();
    const file = await clusterFile('cluster-reconnect', port, 'limits: { per_ip: { connections: 1, rate: 100000/1m } }\n');
    const { child, exit } = await startCluster(file);
    try {
      const codes: number[] = [];
      for (let i = 0; i < 30; i++) codes.push((await greetAndQuit(port, '127.0.0.5')).code);
      assert.deepEqual(
        codes.map((c, i) => [i, c]).filter(([, c]) => c !== 220),
        [],
        'every session greeted with 220',
      );
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exit, 0);
    }
  });

  it('a worker that dies is replaced, and the replacement runs the config in force, not an edit of the file not yet reloaded', async () => {
    const port = await freePort();
    const file = await clusterFile('cluster-respawn', port);
    const { child, output, exit } = await startCluster(file);
    /** The workers' pids, from the kernel's list of the primary's children. */
    const workers = async (): Promise<number[]> =>
      (await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '')).split(/\s+/).filter(Boolean).map(Number);
    try {
      const first = await workers();
      assert.equal(first.length, 2, `two workers: ${first.join(' ')}`);
      // Edited on disk, not reloaded: the cluster serves the config it started with.
      await writeFile(file, (await readFile(file, 'utf8')).replace('hostname: cluster.test', 'hostname: edited.test'));
      for (const pid of first) process.kill(pid, 'SIGKILL');
      const deadline = Date.now() + 15_000;
      while ((output().match(/worker running \(replaces one that died\)/g) ?? []).length < 2) {
        assert.ok(Date.now() < deadline, `two replacements running within 15 s:\n${output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal((output().match(/worker died; starting another/g) ?? []).length, 2, output());
      const now = await workers();
      assert.equal(now.length, 2, `two workers: ${now.join(' ')}`);
      assert.ok(now.every((p) => !first.includes(p)), `new pids ${now.join(' ')} (were ${first.join(' ')})`);
      // Every connection now lands on a replacement, which must greet as the primary serves.
      const after: string[] = [];
      for (let i = 0; i < 6; i++) after.push((await greetAndQuit(port, '127.0.0.6')).text);
      assert.deepEqual(
        after.filter((g) => !g.startsWith('cluster.test')),
        [],
        'the replacements run the config in force',
      );
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exit, 0);
    }
  });

  it('a TLS session ticket issued by one worker resumes on the other', async () => {
    const pki = await makePki();
    const leaf = await pki.leaf('mx', 'ecdsa', ['mx.cluster.test']);
    const port = await freePort();
    const file = join(dir, 'cluster-tls.yaml');
    await writeFile(
      file,
      `hostname: cluster.test
workers: 2
listeners:
  - name: smtps
    listen: 127.0.0.1:${port}
    tls: implicit
tls:
  certificates:
    - { cert: ${leaf.cert}, key: ${leaf.key} }
backends:
  servers:
    - address: 127.0.0.1:${sink.address().port}
limits: { per_ip: { connections: 100, rate: 10000/1m } }
`,
    );
    const { child, output, exit } = await startCluster(file);
    try {
      // One ticket from a first full handshake, then offered again and again.
      let session: Buffer | undefined;
      for (let i = 0; i < 16; i++) {
        const sock = tls.connect({ host: '127.0.0.1', port, servername: 'mx.cluster.test', ca: leaf.ca.pem, session, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
        sock.on('session', (s: Buffer) => (session ??= s));
        await new Promise<void>((r, j) => sock.once('secureConnect', r).once('error', j));
        let got = '';
        sock.on('data', (d: Buffer) => (got += d.toString()));
        while (!/^220 /m.test(got)) await new Promise((r) => setTimeout(r, 5));
        sock.end('QUIT\r\n');
        await new Promise((r) => sock.once('close', r));
      }
      await new Promise((r) => setTimeout(r, 300));
      const recs = output()
        .split('\n')
        .filter((l) => l.includes('"event":"session"'))
        .map((l) => JSON.parse(l) as { conn: string; tls: { resumed: boolean } | null });
      assert.equal(recs.length, 16);
      const resumedBy = new Set(recs.filter((r) => r.tls?.resumed).map((r) => r.conn.slice(0, 6)));
      const workers = new Set(recs.map((r) => r.conn.slice(0, 6)));
      assert.equal(workers.size, 2, 'both workers served');
      assert.equal(recs.filter((r) => r.tls?.resumed).length, 15, 'every handshake after the first resumed');
      assert.equal(resumedBy.size, 2, 'including on the worker that did not issue the ticket');
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exit, 0);
      await pki.cleanup();
    }
  });
});
