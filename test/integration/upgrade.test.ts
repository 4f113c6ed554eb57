// SIGUSR2: a new process takes the listening sockets over and serves; only then does the
// old one stop accepting and drain. Under load from Postfix's smtp-source, two upgrades in
// a row lose no session, with one process and with a cluster; a successor that cannot
// start leaves the old process serving, with the reason in its log.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { alive, childPids, cliBuilt, readPid, startPosternProcess, stopPid } from '../helpers/postern-process.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { httpGet, ProbeLoop, probeImplicit, probeMetrics, probePlain, probeProxied, probeStarttls } from '../helpers/probes.js';

const SMTP_SOURCE = '/usr/sbin/smtp-source';

interface Load {
  done: Promise<{ code: number | null; stderr: string; ms: number }>;
}

/** smtp-source: `messages` messages over `sessions` parallel sessions, one message per session. */
function smtpSource(port: number, sessions: number, messages: number): Load {
  const started = Date.now();
  const child = spawn(SMTP_SOURCE, ['-s', String(sessions), '-m', String(messages), '-l', '2000', '-f', 'load@example.org', '-t', 'sink@example.net', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return {
    done: new Promise((resolve) =>
      child.on('exit', (code) => {
        clearTimeout(killer);
        resolve({ code, stderr, ms: Date.now() - started });
      }),
    ),
  };
}

function yaml(port: number, backend: number, workers: number): string {
  return `hostname: upgrade.test
workers: ${workers}
listeners:
  - name: smtp
    listen: 127.0.0.1:${port}
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers:
    - address: 127.0.0.1:${backend}
limits: { per_ip: { connections: 1000, rate: 100000/1m } }
shutdown_grace: 20s
`;
}

describe('SIGUSR2 upgrade', { skip: (!cliBuilt() && 'dist/cli.js missing: run `npm run build`') || (!existsSync(SMTP_SOURCE) && 'smtp-source missing (apt-get install postfix)') }, () => {
  let sink: Sink;
  let dir: string;
  let pki: TestPki;
  let leaf: Leaf;
  const started: number[] = [];
  before(async () => {
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-upgrade-'));
    pki = await makePki();
    leaf = await pki.leaf('mx', 'ecdsa', ['mx.upgrade.test']);
  });
  after(async () => {
    for (const pid of started) await stopPid(pid);
    await sink.close();
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** Waits until the pid file names a new serving process; returns its pid. */
  async function nextPid(file: string, old: number): Promise<number> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const pid = readPid(file);
      if (pid !== null && pid !== old) return pid;
      if (Date.now() > deadline) throw new Error(`no new pid in ${file}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function waitGone(pid: number, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }

  for (const workers of [1, 2]) {
    it(`two upgrades in a row under smtp-source load lose no session (workers: ${workers})`, async (t) => {
      const port = await freePort();
      const file = join(dir, `w${workers}.yaml`);
      const pidFile = join(dir, `w${workers}.pid`);
      await writeFile(file, yaml(port, sink.address().port, workers));
      const accepted = sink.messages.length;
      const p = startPosternProcess(['run', '-c', file, '--pid-file', pidFile]);
      let pids: number[] = [];
      try {
        await p.waitFor(workers > 1 ? /workers running/ : /listening on/);
        const first = (await nextPid(pidFile, 0))!;
        assert.equal(first, p.child.pid);
        pids = [first];
        const total = 1500;
        const load = smtpSource(port, 20, total);
        // Let the load get going, then upgrade twice, each once the previous successor serves.
        await new Promise((r) => setTimeout(r, 400));
        let current = first;
        for (let i = 0; i < 2; i++) {
          const workersBefore = childPids(current);
          process.kill(current, 'SIGUSR2');
          const next = await nextPid(pidFile, current);
          started.push(next);
          pids.push(next);
          await waitGone(current);
          assert.equal(alive(current), false, `old process ${current} is gone`);
          for (const w of workersBefore) assert.equal(alive(w), false, `its worker ${w} is gone`);
          if (workers > 1) assert.equal(childPids(next).length, workers, 'the successor runs its own workers');
          current = next;
        }
        const r = await load.done;
        t.diagnostic(`smtp-source: ${total} sessions through 2 upgrades in ${r.ms} ms, exit ${r.code}, stderr ${JSON.stringify(r.stderr.trim())}`);
        assert.equal(r.code, 0, `smtp-source failed: ${r.stderr}`);
        assert.equal(r.stderr.trim(), '', 'no warning or error from smtp-source');
        // Every session's message reached the backend (the sink saw it).
        const deadline = Date.now() + 10_000;
        while (sink.messages.length - accepted < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        assert.equal(sink.messages.length - accepted, total, 'every message relayed');
        // The old processes drained: their session records all closed by quit.
        const sessionRecords = () => p.records().filter((x) => x.event === 'session');
        const until = Date.now() + 10_000;
        while (sessionRecords().length < total && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
        const sessions = sessionRecords();
        assert.equal(sessions.length, total, 'one session record per session');
        assert.deepEqual([...new Set(sessions.map((x) => x.close))], ['quit']);
        // Connection ids start with a per-process prefix: the load met all three generations.
        const servedBy = new Set(sessions.map((x) => String(x.conn).slice(0, 6)));
        t.diagnostic(`sessions served by ${servedBy.size} processes`);
        assert.ok(servedBy.size >= 3, `served by ${servedBy.size} processes only`);
        assert.equal(readPid(pidFile), current);
        const c = await SmtpClient.connect(port);
        assert.equal((await sendMessage(c, {})).code, 250, 'the last successor serves');
      } finally {
        for (const pid of pids.slice(1)) await stopPid(pid);
        await p.stop();
      }
      assert.equal(existsSync(pidFile), false, 'the pid file is removed by the process it names');
    });
  }

  // Issue 21 B4: with `metrics:` configured the successor bound the metrics address itself
  // and failed with EADDRINUSE, so no upgrade ever worked in the documented setup.
  for (const workers of [1, 2]) {
    it(`every listener kind and the metrics listener serve throughout two upgrades (workers: ${workers})`, async (t) => {
      const [plain, starttls, implicit, proxied, metrics] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
      const file = join(dir, `all-w${workers}.yaml`);
      const pidFile = join(dir, `all-w${workers}.pid`);
      await writeFile(
        file,
        `hostname: mx.upgrade.test
workers: ${workers}
listeners:
  - { name: plain, listen: 127.0.0.1:${plain} }
  - { name: starttls, listen: 127.0.0.1:${starttls}, tls: starttls }
  - { name: implicit, listen: 127.0.0.1:${implicit}, tls: implicit }
  - { name: proxied, listen: 127.0.0.1:${proxied}, proxy_protocol: on, trusted_proxies: [127.0.0.9/32] }
tls:
  certificates: [{ cert: ${leaf.cert}, key: ${leaf.key} }]
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [{ address: 127.0.0.1:${sink.address().port} }]
limits: { per_ip: { connections: 1000, rate: 100000/1m } }
metrics: { listen: 127.0.0.1:${metrics} }
shutdown_grace: 10s
`,
      );
      const p = startPosternProcess(['run', '-c', file, '--pid-file', pidFile]);
      const pids: number[] = [];
      const loops: ProbeLoop[] = [];
      try {
        await p.waitFor(/metrics on/);
        const first = await nextPid(pidFile, 0);
        pids.push(first);
        // Ready once a health check found the backend up.
        const readyBy = Date.now() + 10_000;
        while ((await httpGet(metrics, '/readyz')).status !== 200 && Date.now() < readyBy) await new Promise((r) => setTimeout(r, 100));
        loops.push(
          new ProbeLoop('plain', () => probePlain(plain)),
          new ProbeLoop('starttls', () => probeStarttls(starttls, leaf.ca.pem, 'mx.upgrade.test')),
          new ProbeLoop('implicit', () => probeImplicit(implicit, leaf.ca.pem, 'mx.upgrade.test')),
          new ProbeLoop('proxied', () => probeProxied(proxied, '127.0.0.9', '127.0.0.77')),
          new ProbeLoop('metrics', () => probeMetrics(metrics)),
        );
        await new Promise((r) => setTimeout(r, 300));
        let current = first;
        for (let i = 0; i < 2; i++) {
          process.kill(current, 'SIGUSR2');
          const next = await nextPid(pidFile, current);
          started.push(next);
          pids.push(next);
          await waitGone(current);
          assert.equal(alive(current), false, `old process ${current} is gone`);
          current = next;
        }
        // A little more traffic on the last successor alone.
        await new Promise((r) => setTimeout(r, 300));
        await Promise.all(loops.map((l) => l.stop()));
        t.diagnostic(loops.map((l) => `${l.name} ${l.ok} ok`).join(', '));
        assert.deepEqual(loops.flatMap((l) => l.failures), [], 'no probe failed: no connection refused, reset or wrong reply');
        for (const l of loops) assert.ok(l.ok >= 3, `${l.name}: only ${l.ok} probes succeeded`);
        assert.equal(p.records().filter((r) => r.event === 'upgrade_failed').length, 0, 'no upgrade failed');
        // Each successor took the metrics socket over instead of binding it.
        assert.equal(p.records().filter((r) => /^metrics on .*inherited socket/.test(String(r.msg))).length, 2);
        const m = await httpGet(metrics, '/metrics');
        assert.equal(m.status, 200);
        assert.match(m.body, /postern_connections_total\{listener="implicit"\} [1-9]/, 'the last successor counts its own connections');
      } finally {
        await Promise.all(loops.map((l) => l.stop()));
        for (const pid of pids.slice(1)) await stopPid(pid);
        await p.stop();
      }
    });
  }

  it('a successor that cannot start (invalid config) leaves the old process serving, with the reason logged', async () => {
    const port = await freePort();
    const file = join(dir, 'bad.yaml');
    const pidFile = join(dir, 'bad.pid');
    await writeFile(file, yaml(port, sink.address().port, 1));
    const p = startPosternProcess(['run', '-c', file, '--pid-file', pidFile]);
    try {
      await p.waitFor(/listening on/);
      await writeFile(file, yaml(port, sink.address().port, 1).replace('identity: xclient', 'identity: carrier-pigeon'));
      p.child.kill('SIGUSR2');
      const rec = await p.waitRecord((r) => r.event === 'upgrade_failed');
      assert.match(String(rec.err), /could not start: invalid config .*backends\.identity/);
      assert.equal(readPid(pidFile), p.child.pid, 'the pid file still names the old process');
      const c = await SmtpClient.connect(port);
      assert.equal((await sendMessage(c, {})).code, 250, 'the old process still serves');
      // Fixed: the next SIGUSR2 succeeds.
      await writeFile(file, yaml(port, sink.address().port, 1));
      p.child.kill('SIGUSR2');
      const next = await nextPid(pidFile, p.child.pid!);
      started.push(next);
      assert.equal(await p.exit, 0);
      const c2 = await SmtpClient.connect(port);
      assert.equal((await sendMessage(c2, {})).code, 250);
      await stopPid(next);
    } finally {
      await p.stop();
    }
  });

  it('a successor that dies while starting (port of a new listener in use) leaves the old process serving', async () => {
    const port = await freePort();
    const busy = await freePort();
    const blocker = await import('node:net').then((net) => net.createServer().listen(busy, '127.0.0.1'));
    const file = join(dir, 'busy.yaml');
    await writeFile(file, yaml(port, sink.address().port, 2));
    const p = startPosternProcess(['run', '-c', file]);
    try {
      await p.waitFor(/workers running/);
      // A second listener whose port is taken: the successor fails to bind it.
      await writeFile(file, yaml(port, sink.address().port, 2).replace('backends:', `  - name: extra\n    listen: 127.0.0.1:${busy}\nbackends:`));
      p.child.kill('SIGUSR2');
      const rec = await p.waitRecord((r) => r.event === 'upgrade_failed', 30_000);
      assert.match(String(rec.err), /already in use/);
      const c = await SmtpClient.connect(port);
      assert.equal((await sendMessage(c, {})).code, 250, 'the old cluster still serves');
    } finally {
      blocker.close();
      assert.equal(await p.stop(), 0);
    }
  });
});
