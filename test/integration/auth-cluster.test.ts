// AUTH failure limits hold for the whole cluster (workers: 2), not per process: the kernel
// hands each connection to either worker, and the counts live with the primary. With
// per-process counts the client would get twice the limit.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { startSink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { cliBuilt, startPosternProcess, type PosternProcess } from '../helpers/postern-process.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

/** One connection: EHLO, AUTH PLAIN with these credentials, QUIT; the AUTH reply's code. */
async function attempt(port: number, localAddress: string, pass: string, user = 'dora'): Promise<number> {
  const c = await SmtpClient.connect(port, { localAddress });
  await c.waitReplies(1);
  await c.cmd('EHLO cluster.test');
  const r = await c.cmd(`AUTH PLAIN ${plain(user, pass)}`, 8000);
  await c.cmd('QUIT');
  return r.code;
}

interface Cluster {
  p: PosternProcess;
  port: number;
  stop(): Promise<void>;
}

/** Postern with two workers, AUTH against a password file holding one user, the given failure limits. */
async function startCluster(o: { user: string; password: string; failures: string }): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-auth-cluster-'));
  const sink = await startSink({ xclient: true });
  const port = await freePort();
  await writeFile(join(dir, 'passwd'), `${o.user}:${await bcrypt.hash(o.password, 4)}\n`);
  await writeFile(
    join(dir, 'postern.yaml'),
    `hostname: cluster.test
workers: 2
listeners:
  - { name: smtp, listen: 127.0.0.1:${port}, auth: optional }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [{ address: 127.0.0.1:${sink.address().port} }]
limits:
  per_ip: { connections: 100, rate: 10000/1m }
auth:
  plaintext: true
  verifier: { type: file, path: ${join(dir, 'passwd')} }
  failures: { ${o.failures} }
log: { level: info }
`,
  );
  const p = startPosternProcess(['run', '-c', join(dir, 'postern.yaml')]);
  await p.waitFor(/workers running/);
  return {
    p,
    port,
    stop: async () => {
      await p.stop();
      await sink.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('AUTH failure limits across cluster workers', { skip: cliBuilt() ? false : 'dist/cli.js missing (npm test builds it)', timeout: 90_000 }, () => {
  let cluster: Cluster;
  let p: PosternProcess;
  let port: number;

  before(async () => {
    cluster = await startCluster({ user: 'dora', password: 'dora-pw', failures: 'per_ip: 4/10m, per_user: 1000/10m' });
    ({ p, port } = cluster);
  });
  after(() => cluster?.stop());

  it('per_ip 4: failures 1-4 get 535 and every later attempt 454, whichever worker takes it (4 addresses x 6 attempts)', async () => {
    // Addresses in parallel (each refusal past the limit is held 3 s), attempts in order.
    await Promise.all(
      ['127.0.0.21', '127.0.0.22', '127.0.0.23', '127.0.0.25'].map(async (address) => {
        const codes: number[] = [];
        for (let i = 0; i < 6; i++) codes.push(await attempt(port, address, `wrong-${i}`));
        assert.deepEqual(codes, [535, 535, 535, 535, 454, 454], `${address}: ${codes.join(' ')}`);
      }),
    );
    // Both workers served sessions (otherwise this proved nothing about sharing).
    // Connection ids start with a per-process prefix.
    const servedBy = new Set(p.records().filter((r) => r.event === 'session').map((r) => String(r.conn).slice(0, 6)));
    assert.ok(servedBy.size >= 2, `sessions served by ${servedBy.size} process(es)`);
    // The right password from a fresh address still works.
    assert.equal(await attempt(port, '127.0.0.24', 'dora-pw'), 235);
  });
});

// per_user against a spray, with the known addresses held by the primary: whichever worker
// takes alice's connection knows her address, and whichever takes a sprayer's knows the
// count. Repeated so that a 1-in-2 worker pick cannot pass by luck (2^-8).
describe('AUTH per_user under a spray across cluster workers: the attack is refused, the user logs in', { skip: cliBuilt() ? false : 'dist/cli.js missing (npm test builds it)', timeout: 90_000 }, () => {
  let cluster: Cluster;
  let p: PosternProcess;
  let port: number;

  before(async () => {
    cluster = await startCluster({ user: 'alice', password: 'alice-pw', failures: 'per_ip: 50/10m, per_user: 3/10m' });
    ({ p, port } = cluster);
  });
  after(() => cluster?.stop());

  it('sprayers: 535 x3 then 454; alice from her address: 235 eight times in a row; a new address: 454', async () => {
    const home = '127.0.0.60';
    assert.equal(await attempt(port, home, 'alice-pw', 'alice'), 235);
    const codes: number[] = [];
    for (let i = 61; i <= 63; i++) codes.push(await attempt(port, `127.0.0.${i}`, `guess-${i}`, 'alice'));
    codes.push(...(await Promise.all([64, 65, 66, 67, 68, 69, 70, 71].map((i) => attempt(port, `127.0.0.${i}`, `guess-${i}`, 'alice')))));
    assert.deepEqual(codes, [535, 535, 535, 454, 454, 454, 454, 454, 454, 454, 454]);
    const home8: number[] = [];
    for (let i = 0; i < 8; i++) home8.push(await attempt(port, home, 'alice-pw', 'alice'));
    assert.deepEqual(home8, [235, 235, 235, 235, 235, 235, 235, 235]);
    assert.equal(await attempt(port, '127.0.0.72', 'alice-pw', 'alice'), 454);
    const servedBy = new Set(p.records().filter((r) => r.event === 'session').map((r) => String(r.conn).slice(0, 6)));
    assert.ok(servedBy.size >= 2, `sessions served by ${servedBy.size} process(es)`);
    // Each refusal's record comes through the worker's stdout, maybe after the client read the 454.
    const floods = () => p.records().filter((r) => r.event === 'anomaly' && r.kind === 'auth_flood').length;
    for (const end = Date.now() + 5000; floods() < 9 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 20));
    assert.equal(floods(), 9);
  });
});
