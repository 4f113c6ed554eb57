// run_as: root binds a privileged port and reads the keys, then every serving process
// (the primary and each worker) becomes the configured user: /proc/PID/status shows no uid
// 0 anywhere. The ticket key file and the pid file were handed over first, so ticket keys
// still rotate (the file is rewritten by the user) and mail still flows.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { freePort } from '../helpers/net.js';
import { childPids, cliBuilt, readPid, startPosternProcess } from '../helpers/postern-process.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const USER = 'postern-test';
const isRoot = process.getuid?.() === 0;

/** The test user's uid, creating the system user if it is missing (root only). */
function testUser(): number | null {
  try {
    return Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
  } catch {
    try {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER], { stdio: 'ignore' });
      return Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }).trim());
    } catch {
      return null;
    }
  }
}

/** A port below 1024 that is free on 127.0.0.1 (binding it needs root). */
async function privilegedPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 600 + Math.floor(Math.random() * 400);
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port below 1024');
}

/** Real, effective, saved and filesystem uids of a process. */
function uids(pid: number): number[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'))!;
  return line.split(/\s+/).slice(1).map(Number);
}

describe('run_as', { skip: (!cliBuilt() && 'dist/cli.js missing: run `npm run build`') || (!isRoot && 'needs root (binding port < 1024, setuid)') }, () => {
  let sink: Sink;
  let dir: string;
  let pki: TestPki;
  let leaf: Leaf;
  let uid: number;
  before(async () => {
    const u = testUser();
    assert.ok(u !== null && u > 0, `cannot create the system user ${USER}`);
    uid = u;
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-runas-'));
    pki = await makePki();
    leaf = await pki.leaf('mx', 'ecdsa', ['mx.runas.test']);
  });
  after(async () => {
    await sink.close();
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  for (const workers of [1, 2]) {
    it(`binds a privileged port, then no serving process runs as root; ticket keys still rotate (workers: ${workers})`, async () => {
      const port = await privilegedPort();
      const smtps = await freePort();
      const metrics = await freePort();
      const keyFile = join(dir, `keys-${workers}`, 'ticket-keys');
      const runDir = join(dir, `run-${workers}`);
      await mkdir(runDir, { mode: 0o755 });
      const pidFile = join(runDir, 'postern.pid');
      const file = join(dir, `runas-${workers}.yaml`);
      await writeFile(
        file,
        `hostname: runas.test
workers: ${workers}
run_as: { user: ${USER} }
listeners:
  - name: smtp
    listen: 127.0.0.1:${port}
  - name: smtps
    listen: 127.0.0.1:${smtps}
    tls: implicit
tls:
  certificates:
    - { cert: ${leaf.cert}, key: ${leaf.key} }
  ticket_keys: { file: ${keyFile}, rotate: 1s, lifetime: 3s }
backends:
  servers:
    - address: 127.0.0.1:${sink.address().port}
metrics: { listen: 127.0.0.1:${metrics} }
`,
      );
      // Like /var/lib: the user must be able to reach its directories (mkdtemp makes 0700).
      await chmod(dir, 0o755);
      const p = startPosternProcess(['run', '-c', file, '--pid-file', pidFile]);
      let passed = false;
      try {
        await p.waitFor(workers > 1 ? /workers running/ : /running as postern-test/);
        const main = readPid(pidFile)!;
        assert.equal(main, p.child.pid);
        const serving = [main, ...childPids(main)];
        assert.equal(serving.length, workers > 1 ? workers + 1 : 1);
        // Workers drop right after they listen; wait for each to say so.
        const deadline = Date.now() + 10_000;
        while (p.records().filter((r) => r.event === 'run_as' && r.uid === uid).length < serving.length && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
        for (const pid of serving) assert.deepEqual(uids(pid), [uid, uid, uid, uid], `process ${pid} runs as ${USER} (real, effective, saved, fs)`);
        // Serving goes on as the user.
        const c = await SmtpClient.connect(port);
        assert.equal((await sendMessage(c, {})).code, 250);
        assert.equal((await fetch(`http://127.0.0.1:${metrics}/readyz`)).status, 200);
        // The key file belongs to the user and is rewritten by it as keys rotate.
        const st0 = statSync(keyFile);
        assert.equal(st0.uid, uid, 'the ticket key file was handed over');
        assert.equal(statSync(join(dir, `keys-${workers}`)).uid, uid, 'and its directory');
        await new Promise((r) => setTimeout(r, 1800));
        const st1 = statSync(keyFile);
        assert.ok(st1.mtimeMs > st0.mtimeMs, 'rewritten since (a rotation)');
        assert.equal(st1.uid, uid);
        assert.equal(p.records().filter((r) => /ticket key maintenance failed/.test(String(r.msg))).length, 0, 'no failed rotation');
        assert.equal(p.records().filter((r) => r.event === 'run_as' && r.level === 'warn').length, 0, 'no warning about files');
        // And TLS works with the rotated keys.
        const s = tls.connect({ host: '127.0.0.1', port: smtps, servername: 'mx.runas.test', ca: leaf.ca.pem });
        await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
        s.destroy();
        passed = true;
      } finally {
        // After a failure above, that failure is the one to report, not the stop's exit code.
        const code = await p.stop();
        if (passed) assert.equal(code, 0, `a clean stop; output:\n${p.output().slice(-3000)}`);
      }
    });
  }

  it('warns when the user cannot reach the ticket key file (a directory on the way is closed to it)', async () => {
    const closed = await mkdtemp(join(tmpdir(), 'postern-runas-closed-'));
    try {
      const keyFile = join(closed, 'keys', 'ticket-keys');
      const file = join(dir, 'runas-closed.yaml');
      await writeFile(
        file,
        `hostname: runas.test
workers: 1
run_as: { user: ${USER} }
listeners:
  - name: smtps
    listen: 127.0.0.1:${await freePort()}
    tls: implicit
tls:
  certificates:
    - { cert: ${leaf.cert}, key: ${leaf.key} }
  ticket_keys: { file: ${keyFile} }
backends:
  servers:
    - address: 127.0.0.1:${sink.address().port}
`,
      );
      const p = startPosternProcess(['run', '-c', file]);
      try {
        const w = await p.waitRecord((r) => r.event === 'run_as' && r.level === 'warn');
        assert.match(String(w.msg), new RegExp(`cannot reach .*ticket-keys: directory ${closed} is not searchable`));
      } finally {
        assert.equal(await p.stop(), 0);
      }
    } finally {
      await rm(closed, { recursive: true, force: true });
    }
  });
});
