// Backend health once per host: HostHealth (the primary's checks, against real loopback
// servers) and a worker's BackendPool following it through a HealthFeed wired in-process
// (the IPC between them is covered by test/integration/cluster-health.test.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BackendError } from '../../src/backend/errors.js';
import type { HealthFeed, HealthState } from '../../src/backend/health-monitor.js';
import { BackendPool } from '../../src/backend/pool.js';
import { HostHealth } from '../../src/server/cluster/host-health.js';
import { Metrics } from '../../src/observe/metrics.js';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { recordingLogger, testPool } from '../helpers/pool.js';
import { until } from '../helpers/script-backend.js';

/** The worker's end of the feed, straight onto the host's monitor. */
function inProcessFeed(host: () => HostHealth, changes: Set<(h: HealthState) => void>): HealthFeed {
  return {
    current: async () => host().states(),
    onChange: (h) => {
      changes.add(h);
      return () => void changes.delete(h);
    },
    report: (o) => host().report(o),
  };
}

describe('HostHealth and a pool that follows it', () => {
  let sink: Sink;
  before(async () => {
    sink = await startSink({ xclient: true });
  });
  after(async () => {
    await sink.close();
  });

  it('the worker pool takes the host\'s states and capabilities; its sessions\' failures are decided, and logged, by the host', async () => {
    const refused = `127.0.0.1:${await freePort()}`;
    const live = `127.0.0.1:${sink.address().port}`;
    const { cfg } = testPool([live, refused], 'health_check: { interval: 1h, timeout: 1s, rise: 1, fall: 3 }');
    const hostLog = recordingLogger();
    const workerLog = recordingLogger();
    const changes = new Set<(h: HealthState) => void>();
    const host: HostHealth = new HostHealth(cfg, { logger: hostLog.logger, metrics: new Metrics(), onChange: (h) => changes.forEach((f) => f(h)) });
    const pool = new BackendPool(cfg.backends, { hostname: cfg.hostname, logger: workerLog.logger, metrics: new Metrics(), feed: inProcessFeed(() => host, changes) });
    try {
      await host.start();
      await pool.start();
      const [a, b] = pool.servers;
      assert.equal(a!.up, true);
      assert.equal(b!.up, false);
      assert.ok(a!.caps?.has('XCLIENT'), 'the capabilities came with the state');
      assert.ok(pool.offered().extensions.has('8BITMIME'), 'so the first EHLO offers what the live server offers');
      assert.deepEqual(
        new Map(hostLog.records.filter((r) => r.event === 'backend').map((r) => [r.address, r.state])),
        new Map([
          [live, 'up'],
          [refused, 'down'],
        ]),
        'one record each, by the host',
      );
      assert.equal(hostLog.records.filter((r) => r.event === 'backend').length, 2);

      // A passing failure in a worker's session counts towards `fall` at the host: not down yet.
      pool.reportFailure(a!, new BackendError('BACKEND_CONNECT', 'connect refused'));
      assert.equal(a!.up, true);
      // Misconfiguration is down at once; the host decides and logs it, the worker follows.
      pool.reportFailure(a!, new BackendError('BACKEND_NO_XCLIENT', 'XCLIENT not offered'));
      await until(() => a!.up === false, 'the worker pool following the host');
      assert.match(String(hostLog.records.at(-1)?.reason), /^session: XCLIENT not offered/);
      assert.equal(workerLog.records.filter((r) => r.event === 'backend').length, 0, 'the worker writes no backend record');

      // Stopped, the pool no longer follows.
      pool.stop();
      assert.equal(changes.size, 0);
    } finally {
      pool.stop();
      host.stop();
    }
  });

  it('a server the worker was routed to (not configured) is decided by the worker itself', async () => {
    const { cfg } = testPool([`127.0.0.1:${sink.address().port}`], 'health_check: { interval: 1h, timeout: 1s }');
    const workerLog = recordingLogger();
    const host = new HostHealth(cfg, { logger: recordingLogger().logger, metrics: new Metrics(), onChange: () => undefined });
    const pool = new BackendPool(cfg.backends, { hostname: cfg.hostname, logger: workerLog.logger, metrics: new Metrics(), feed: inProcessFeed(() => host, new Set()) });
    try {
      await host.start();
      await pool.start();
      const routed = pool.routeTo({ host: '127.0.0.1', port: 1, text: '127.0.0.1:1' });
      pool.reportFailure(routed, new BackendError('BACKEND_CONNECT', 'connect refused'));
      assert.equal(routed.up, false);
      assert.equal(workerLog.records.filter((r) => r.event === 'backend' && r.state === 'down').length, 1);
    } finally {
      pool.stop();
      host.stop();
    }
  });
});
