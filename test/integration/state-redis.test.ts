// Several instances sharing one real Redis (`state.redis`): one per-IP connection cap
// between them (one of them a cluster, whose primary talks to Redis), the Redis commands a
// connection costs, TLS tickets from one instance resumed on the other across a rotation
// (TLS 1.2 and 1.3, no shared file), and an outage: both keep relaying on per-host state
// with one warning each, a metric and /readyz saying so, and share again once Redis is back.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { freePort } from '../helpers/net.js';
import { cliBuilt, startPosternProcess, type PosternProcess } from '../helpers/postern-process.js';
import { redisAvailable, startRedis, type RedisServer } from '../helpers/redis.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

interface Instance {
  proc: PosternProcess;
  port: number;
  metrics: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, body: await r.text() };
}

/** Opens a connection from `from` and reads the greeting: 220 when admitted, 421 when refused. */
async function greet(port: number, from: string): Promise<{ c: SmtpClient; code: number; text: string }> {
  const c = await SmtpClient.connect(port, { localAddress: from });
  const [r] = await c.waitReplies(1);
  return { c, code: r!.code, text: r!.lines.join(' ') };
}

/** Retries until `probe` holds (a release reaches Redis asynchronously). */
async function eventually(probe: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(100);
  }
}

/**
 * Commands clients sent, from INFO commandstats: only scripts are sent while connections
 * come and go (the commands a script runs are counted under their own names too).
 */
function scriptCalls(info: string): number {
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

describe('shared state in Redis', { skip: (!cliBuilt() && 'dist/cli.js missing: run `npm run build`') || (!redisAvailable() && 'redis-server missing (apt-get install redis-server)') }, () => {
  let redis: RedisServer;
  let sink: Sink;
  let dir: string;
  let pki: TestPki;
  let leaf: Leaf;
  const running: PosternProcess[] = [];

  before(async () => {
    redis = await startRedis();
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-redis-'));
    pki = await makePki();
    leaf = await pki.leaf('mx', 'ecdsa', ['mx.shared.test']);
  });
  after(async () => {
    for (const p of running) await p.stop();
    await redis.stop();
    await sink.close();
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  /** `listeners`: more listener entries; `top`: more top-level sections. */
  async function instance(name: string, prefix: string, workers: number, more: { listeners?: string; top?: string } = {}): Promise<Instance> {
    const port = await freePort();
    const metrics = await freePort();
    const file = join(dir, `${name}.yaml`);
    await writeFile(
      file,
      `hostname: ${name}.shared.test
workers: ${workers}
listeners:
  - name: smtp
    listen: 127.0.0.1:${port}
${more.listeners ?? ''}backends:
  servers:
    - address: 127.0.0.1:${sink.address().port}
limits: { per_ip: { connections: 3, rate: 10000/1m } }
metrics: { listen: 127.0.0.1:${metrics} }
state: { redis: { url: "${redis.url}", prefix: "${prefix}" } }
shutdown_grace: 2s
${more.top ?? ''}`,
    );
    const proc = startPosternProcess(['run', '-c', file]);
    running.push(proc);
    await proc.waitFor(workers > 1 ? /workers running/ : /listening on/);
    await proc.waitFor(/Redis connected/);
    return { proc, port, metrics };
  }

  it('two instances (one of them a cluster) hold one per-IP cap between them; each connection costs 2 Redis calls', async (t) => {
    const a = await instance('a', 'cap:', 1);
    const b = await instance('b', 'cap:', 2);
    const open: SmtpClient[] = [];
    try {
      for (const port of [a.port, a.port, b.port]) {
        const g = await greet(port, '127.0.0.2');
        assert.equal(g.code, 220);
        open.push(g.c);
      }
      for (const port of [a.port, b.port]) {
        const g = await greet(port, '127.0.0.2');
        assert.equal(g.code, 421, 'the fourth connection from one address is refused, on either instance');
        assert.match(g.text, /Too many connections from your address/);
        g.c.destroy();
      }
      const other = await greet(b.port, '127.0.0.3');
      assert.equal(other.code, 220, 'another address is counted apart');
      other.c.destroy();
      // One of A's connections ends: B may take one more.
      await open.shift()!.cmd('QUIT');
      await eventually(async () => {
        const g = await greet(b.port, '127.0.0.2');
        if (g.code === 220) open.push(g.c);
        else g.c.destroy();
        return g.code === 220;
      }, 'a release on A makes room on B');
      const refused = (await a.proc.waitRecord((r) => r.event === 'session' && r.limit === 'per_ip_connections')) as { close: string };
      assert.equal(refused.close, 'limit');
      for (const c of open.splice(0)) c.destroy();

      // Redis calls per connection, from Redis's own counters.
      await sleep(300);
      const before = scriptCalls(await redis.command('INFO', 'commandstats'));
      const n = 60;
      for (let i = 0; i < n; i++) {
        const c = await SmtpClient.connect(a.port, { localAddress: `127.0.0.${10 + (i % 50)}` });
        assert.equal((await sendMessage(c, {})).code, 250);
        await c.waitClose();
      }
      await sleep(300);
      const calls = scriptCalls(await redis.command('INFO', 'commandstats')) - before;
      const per = calls / n;
      t.diagnostic(`Redis round trips for ${n} connections: ${calls} (${per.toFixed(2)} per connection, heartbeats included)`);
      assert.ok(per >= 2 && per < 2.2, `expected 2 calls per connection (admit, release), got ${per}`);
    } finally {
      for (const c of open) c.destroy();
      await a.proc.stop();
      await b.proc.stop();
    }
  });

  it('with Redis killed both keep relaying on per-host state (one warning each, metric 0, /readyz 200 with the reason), and share again when it returns', async () => {
    const a = await instance('c', 'outage:', 1);
    const b = await instance('d', 'outage:', 2);
    const open: SmtpClient[] = [];
    try {
      for (const m of [a.metrics, b.metrics]) assert.match((await get(m, '/metrics')).body, /^postern_state_redis_up 1$/m);
      await redis.kill();
      for (const p of [a.proc, b.proc]) await p.waitRecord((r) => r.event === 'redis' && r.state === 'down');
      // Relaying goes on, and per-host caps apply: three from one address on each instance.
      for (const port of [a.port, b.port]) {
        for (let i = 0; i < 3; i++) {
          const g = await greet(port, '127.0.0.4');
          assert.equal(g.code, 220, 'per-host cap: 3 on each instance');
          open.push(g.c);
        }
        const over = await greet(port, '127.0.0.4');
        assert.equal(over.code, 421);
        over.c.destroy();
        for (let i = 0; i < 3; i++) {
          const c = await SmtpClient.connect(port);
          assert.equal((await sendMessage(c, {})).code, 250, 'mail flows with Redis down');
        }
      }
      for (const p of [a.proc, b.proc]) {
        assert.equal(p.records().filter((r) => r.event === 'redis' && r.state === 'down').length, 1, 'one warning for the whole outage');
      }
      for (const m of [a.metrics, b.metrics]) {
        assert.match((await get(m, '/metrics')).body, /^postern_state_redis_up 0$/m);
        const ready = await get(m, '/readyz');
        assert.equal(ready.status, 200, 'still ready: serving goes on');
        assert.match(ready.body, /^ready\nredis redis:\/\/127\.0\.0\.1:\d+: unreachable since .*per-host state in force\n$/);
      }
      for (const c of open.splice(0)) c.destroy();
      // Redis returns (empty: nothing was saved).
      const held = await greet(a.port, '127.0.0.5');
      assert.equal(held.code, 220);
      open.push(held.c);
      await redis.restart();
      for (const p of [a.proc, b.proc]) await p.waitRecord((r) => r.event === 'redis' && r.state === 'up' && /again/.test(String(r.msg)), 15_000);
      for (const m of [a.metrics, b.metrics]) {
        assert.match((await get(m, '/metrics')).body, /^postern_state_redis_up 1$/m);
        assert.match((await get(m, '/readyz')).body, /: up, state shared/);
      }
      // Shared again, and A's connection held through the outage is counted: two more fit in all.
      for (const port of [b.port, a.port]) {
        const g = await greet(port, '127.0.0.5');
        assert.equal(g.code, 220);
        open.push(g.c);
      }
      for (const port of [a.port, b.port]) {
        const g = await greet(port, '127.0.0.5');
        assert.equal(g.code, 421, 'the cap is shared again');
        g.c.destroy();
      }
    } finally {
      for (const c of open) c.destroy();
      await a.proc.stop();
      await b.proc.stop();
    }
  });

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`a ${version} ticket from one instance resumes on the other, with no shared file, across a rotation`, async () => {
      const tlsListener = (port: number) => `  - name: smtps\n    listen: 127.0.0.1:${port}\n    tls: implicit\n`;
      const tlsSection = `tls:\n  certificates:\n    - { cert: ${leaf.cert}, key: ${leaf.key} }\n  ticket_keys: { rotate: 2s, lifetime: 10s }\n  session_cache: { size: 0 }\n`;
      const [pa, pb] = [await freePort(), await freePort()];
      const prefix = `tickets-${version}:`;
      const a = await instance(`ta-${version}`, prefix, 1, { listeners: tlsListener(pa), top: tlsSection });
      const b = await instance(`tb-${version}`, prefix, 2, { listeners: tlsListener(pb), top: tlsSection });
      try {
        const first = await handshake(pa, version);
        assert.equal(first.resumed, false);
        const onB = await handshake(pb, version, first.session);
        assert.equal(onB.resumed, true, `${version}: A's ticket resumes on B`);
        // Past a rotation: the key that sealed the ticket no longer encrypts; it still decrypts.
        await sleep(2600);
        const later = await handshake(pb, version, first.session);
        assert.equal(later.resumed, true, `${version}: still resumes on B after a rotation`);
        const backOnA = await handshake(pa, version, onB.session ?? first.session);
        assert.equal(backOnA.resumed, true, `${version}: B's ticket resumes on A`);
        const stored = await redis.command('GET', `${prefix}tls:ticket-keys`);
        assert.match(stored, /postern-ticket-keys/, 'the keys are in Redis');
      } finally {
        await a.proc.stop();
        await b.proc.stop();
      }
    });
  }

  async function handshake(port: number, version: 'TLSv1.2' | 'TLSv1.3', session?: Buffer): Promise<{ resumed: boolean; session: Buffer | undefined }> {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'mx.shared.test', ca: leaf.ca.pem, session, minVersion: version, maxVersion: version });
    let got: Buffer | undefined;
    sock.on('session', (s: Buffer) => (got = s));
    await new Promise<void>((resolve, reject) => sock.once('secureConnect', resolve).once('error', reject));
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString()));
    while (!/^220 /m.test(text)) await sleep(5);
    const resumed = sock.isSessionReused();
    sock.end('QUIT\r\n');
    await new Promise((r) => sock.once('close', r));
    return { resumed, session: got };
  }
});
