// server/routing.ts PoolSet and backend/pool-health.ts: every pool of a config, each server
// health-checked once however many pools list it, every pool's copy following that result;
// a retired pool set stops once its last session ends. Real sinks on loopback.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observe/logger.js';
import { Metrics } from '../../src/observe/metrics.js';
import { PoolSet } from '../../src/server/routing.js';
import { startSink, type Sink } from '../../src/sink/index.js';

const checks = async (m: Metrics) => (await m.healthChecks.get()).values.map((v) => `${v.labels.pool} ${v.labels.backend} ${v.labels.result} ${v.value}`).sort();

describe('PoolSet', () => {
  let a: Sink;
  let b: Sink;
  before(async () => {
    [a, b] = await Promise.all([startSink({ xclient: true }), startSink({ xclient: true })]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  const config = () =>
    parseConfig(`listeners: [ { name: smtp, listen: 127.0.0.1:0 } ]
backends: { health_check: { interval: 10m }, servers: [ { address: 127.0.0.1:${a.address().port} } ] }
pools:
  both: { health_check: { interval: 10m }, servers: [ { address: 127.0.0.1:${b.address().port} }, { address: 127.0.0.1:${a.address().port} } ] }
`);

  it('checks a server listed in two pools once, and both pools take its state', async () => {
    const metrics = new Metrics();
    const set = new PoolSet(config(), { logger: createLogger({ level: 'silent', format: 'json' }), metrics, feed: null });
    try {
      await set.start();
      const ka = `127.0.0.1:${a.address().port}`;
      const kb = `127.0.0.1:${b.address().port}`;
      // One first round: a under default (the first pool listing it), b under both.
      assert.deepEqual(await checks(metrics), [`both ${kb} ok 1`, `default ${ka} ok 1`].sort());
      assert.equal(set.front.name, 'default');
      assert.deepEqual(set.get('both')!.servers.map((s) => [s.key, s.up]), [[kb, true], [ka, true]]);
      assert.deepEqual(set.get('default')!.servers.map((s) => [s.key, s.up]), [[ka, true]]);
      assert.equal(set.differs(config()), false);
    } finally {
      set.stop();
    }
  });

  it('retired, stops once its last session releases its server', async () => {
    const set = new PoolSet(config(), { logger: createLogger({ level: 'silent', format: 'json' }), metrics: new Metrics(), feed: null });
    await set.start();
    const p = set.get('both')!;
    const s = p.servers[0]!;
    p.acquire(s);
    let stopped = 0;
    const stop = p.stop.bind(p);
    p.stop = () => {
      stopped++;
      stop();
    };
    set.retire();
    assert.equal(stopped, 0, 'a session still holds a server');
    p.release(s);
    assert.equal(stopped, 1);
  });
});
