// The TLS session-ID cache across hosts (issue 18): two instances on one Redis (one a
// cluster of 2 workers, one a single process) resume each other's session-ID sessions,
// every one a lookup in Redis; the host's hits, misses and size in /metrics and
// `postern status`; with Redis away each host resumes its own sessions alone (and says so),
// and the sessions it made meanwhile reach the other host once Redis is back.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { freePort } from '../helpers/net.js';
import { CLI, cliBuilt, startPosternProcess, type PosternProcess, type Rec } from '../helpers/postern-process.js';
import { redisAvailable, startRedis, type RedisServer } from '../helpers/redis.js';
import { opensslAvailable, visit, type Visit } from '../helpers/resumption.js';

const NAME = 'mx.shared.test';
const PREFIX = 'sessions:';
const ROUNDS = 16;
const run = promisify(execFile);

interface Instance {
  name: string;
  proc: PosternProcess;
  port: number;
  metrics: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `name{labels}` -> value from Prometheus text. */
function metric(text: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

const skip =
  (!cliBuilt() && 'dist/cli.js missing: run `npm run build`') ||
  (!opensslAvailable() && 'openssl missing') ||
  (!redisAvailable() && 'redis-server missing (apt-get install redis-server)');

describe('TLS session-ID cache shared through Redis', { skip }, () => {
  let redis: RedisServer;
  let sink: Sink;
  let pki: TestPki;
  let leaf: Leaf;
  let dir: string;
  let a: Instance;
  let b: Instance;
  let seq = 0;

  async function instance(name: string, workers: number): Promise<Instance> {
    const [port, metrics] = [await freePort(), await freePort()];
    const file = join(dir, `${name}.yaml`);
    await writeFile(
      file,
      `hostname: ${name}.shared.test
workers: ${workers}
shutdown_grace: 1s
listeners:
  - { name: smtps, listen: 127.0.0.1:${port}, tls: implicit }
backends:
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
limits: { per_ip: { connections: 1000, rate: 1000000/1m } }
metrics: { listen: 127.0.0.1:${metrics} }
state: { redis: { url: "${redis.url}", prefix: "${PREFIX}" } }
tls:
  certificates: [ { cert: ${leaf.cert}, key: ${leaf.key} } ]
`,
    );
    const proc = startPosternProcess(['run', '-c', file]);
    await proc.waitFor(workers > 1 ? /workers running/ : /listening on/, 30_000);
    await proc.waitFor(/Redis connected/);
    return { name, proc, port, metrics };
  }

  before(async () => {
    [redis, sink, pki, dir] = await Promise.all([startRedis(), startSink({ xclient: true }), makePki(), mkdtemp(join(tmpdir(), 'postern-sessions-'))]);
    leaf = await pki.leaf('shared', 'ecdsa', [NAME]);
    [a, b] = await Promise.all([instance('a', 2), instance('b', 1)]);
  });
  after(async () => {
    await Promise.all([a?.proc.stop(), b?.proc.stop()]);
    await redis?.stop();
    await sink?.close();
    await pki?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A TLS 1.2 session-ID visit (openssl s_client -tls1_2 -no_ticket). */
  function go(on: Instance, sessIn?: string, sessOut?: string): Promise<Visit> {
    return visit({ port: on.port, starttls: false, kind: 'tls12-id', helo: `v${++seq}.${on.name}`, servername: NAME, ca: leaf.ca.cert, sessIn, sessOut });
  }

  async function issue(on: Instance): Promise<{ file: string; id: string }> {
    const file = join(dir, `sess-${++seq}`);
    const v = await go(on, undefined, file);
    assert.equal(v.reused, false);
    const id = /Session-ID: ([0-9A-F]+)/.exec(v.out)?.[1];
    assert.ok(id, 'the server gave a session ID');
    return { file, id: id.toLowerCase() };
  }

  async function record(on: Instance, helo: string): Promise<Rec> {
    return on.proc.waitRecord((r) => r.event === 'session' && r.helo === helo, 10_000);
  }

  const scrape = async (on: Instance) => (await fetch(`http://127.0.0.1:${on.metrics}/metrics`)).text();

  it(`two instances resume each other's session-ID sessions ${ROUNDS}/${ROUNDS}, each from Redis`, async () => {
    const before = await Promise.all([a, b].map(async (x) => metric(await scrape(x), 'postern_tls_session_cache_hits_total{store="redis"}')));
    let resumed = 0;
    for (let i = 0; i < ROUNDS; i++) {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      const s = await issue(from);
      const v = await go(to, s.file);
      assert.ok(v.reused, `round ${i}: a session from ${from.name} did not resume on ${to.name}:\n${v.out.slice(0, 2000)}`);
      assert.equal(((await record(to, v.helo)).tls as { resumed: boolean }).resumed, true);
      resumed++;
    }
    assert.equal(resumed, ROUNDS);
    const after = await Promise.all([a, b].map(async (x) => metric(await scrape(x), 'postern_tls_session_cache_hits_total{store="redis"}')));
    assert.equal(after[0]! - before[0]!, ROUNDS / 2, "A found B's sessions in Redis");
    assert.equal(after[1]! - before[1]!, ROUNDS / 2, "B found A's sessions in Redis");
    const keys = await redis.command('DBSIZE');
    assert.ok(Number(keys) >= ROUNDS, `the sessions are in Redis (${keys} keys)`);
  });

  it("/metrics and `postern status` show the host's hits, misses and size", async () => {
    const s = await issue(a);
    for (let i = 0; i < 4; i++) assert.ok((await go(a, s.file)).reused);
    const text = await scrape(a);
    const hits = metric(text, 'postern_tls_session_cache_hits_total{store="host"}') + metric(text, 'postern_tls_session_cache_hits_total{store="redis"}');
    const misses = metric(text, 'postern_tls_session_cache_misses_total');
    const sessions = metric(text, 'postern_tls_session_cache_sessions');
    const stores = metric(text, 'postern_tls_session_cache_stores_total');
    assert.ok(hits >= 4 + ROUNDS / 2, `hits ${hits}`);
    assert.ok(sessions >= ROUNDS / 2 + 1, `sessions held ${sessions}`);
    assert.ok(stores >= ROUNDS / 2 + 1, `stores ${stores}`);
    assert.ok(Number.isFinite(misses), 'misses are shown');
    // One line per metric: the primary's own, not one per worker.
    assert.equal(text.match(/^postern_tls_session_cache_sessions /gm)?.length, 1);
    const { stdout } = await run(process.execPath, [CLI, 'status', '--metrics', `127.0.0.1:${a.metrics}`]);
    const line = /^TLS session cache: (\d+)\/20000 sessions, (\d+) hits \((\d+) from Redis\), (\d+) misses \([\d.]+ % hits\), Redis up$/m.exec(stdout);
    assert.ok(line, stdout);
    assert.ok(Number(line[2]) >= hits, 'the same counts as /metrics (or later ones)');
    const single = await run(process.execPath, [CLI, 'status', '--metrics', `127.0.0.1:${b.metrics}`]);
    assert.match(single.stdout, /^TLS session cache: \d+\/20000 sessions, \d+ hits \(\d+ from Redis\)/m, 'a single process shows its own');
  });

  it("with Redis away each host resumes its own sessions and says so; what it stored meanwhile reaches the other host when Redis is back", async () => {
    await redis.kill();
    for (const x of [a, b]) await x.proc.waitRecord((r) => r.event === 'redis' && r.state === 'down', 15_000);
    const s = await issue(a);
    for (let i = 0; i < ROUNDS; i++) {
      const v = await go(a, s.file);
      assert.ok(v.reused, `round ${i} with Redis down:\n${v.out.slice(0, 2000)}`);
    }
    const text = await scrape(a);
    assert.equal(metric(text, 'postern_state_redis_up'), 0);
    const { stdout } = await run(process.execPath, [CLI, 'status', '--metrics', `127.0.0.1:${a.metrics}`]);
    assert.match(stdout, /^TLS session cache: .*, Redis DOWN: this host only$/m);
    const warning = a.proc.records().find((r) => r.event === 'redis' && r.state === 'down') as Rec;
    assert.match(String(warning.msg), /TLS session cache/);

    await redis.restart();
    for (const x of [a, b]) await x.proc.waitRecord((r) => r.event === 'redis' && r.state === 'up' && /again/.test(String(r.msg)), 15_000);
    // Written back by A once Redis returned (Redis came back empty).
    const key = `${PREFIX}tls:session:${s.id}`;
    const deadline = Date.now() + 5000;
    while ((await redis.command('EXISTS', key)) !== '1') {
      assert.ok(Date.now() < deadline, `${key} was not written back`);
      await sleep(50);
    }
    const v = await go(b, s.file);
    assert.ok(v.reused, `a session A made while Redis was away resumes on B:\n${v.out.slice(0, 2000)}`);
  });
});
