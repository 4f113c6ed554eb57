// Truthful reload (issue 25): a SIGHUP's record names the keys that changed and those that
// wait for a restart, never "configuration reloaded" alone for a partial apply; the reload
// metrics and build info on the metrics listener, one series per service with a cluster
// (served by the primary, not summed over workers). `postern run` as operators start it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { cliBuilt, startPosternProcess, type Rec } from '../helpers/postern-process.js';
import { httpGet } from '../helpers/probes.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const VERSION = (JSON.parse(readFileSync(join(process.cwd(), 'package.json'), 'utf8')) as { version: string }).version;

/** Every sample of `name` in a Prometheus text page: labels as written, and the value. */
function samples(page: string, name: string): { labels: string; value: number }[] {
  const re = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm');
  return [...page.matchAll(re)].map((m) => ({ labels: m[1] ?? '', value: Number(m[2]) }));
}

describe('SIGHUP tells what it applied', { skip: !cliBuilt() && 'dist/cli.js missing: run `npm run build`' }, () => {
  let sink: Sink;
  let dir: string;
  before(async () => {
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-reload-'));
  });
  after(async () => {
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const workers of [1, 2]) {
    it(`names what needs a restart, and the metrics say how the last reload went (workers: ${workers})`, async () => {
      const [port, metrics] = await Promise.all([freePort(), freePort()]);
      const yaml = (hostname: string, extra = '') => `hostname: ${hostname}
workers: ${workers}
listeners:
  - { name: smtp, listen: 127.0.0.1:${port} }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [{ address: 127.0.0.1:${sink.address().port} }]
metrics: { listen: 127.0.0.1:${metrics} }
${extra}`;
      const file = join(dir, `w${workers}.yaml`);
      await writeFile(file, yaml('one.test'));
      const p = startPosternProcess(['run', '-c', file]);
      const page = async () => {
        const r = await httpGet(metrics, '/metrics');
        assert.equal(r.status, 200);
        return r.body;
      };
      const reloadRecords = () => p.records().filter((r) => (r.event === 'reload' || r.event === 'reload_failed') && Array.isArray(r.changed));
      /** SIGHUP, then the reload record it produced. */
      const hup = async (): Promise<Rec> => {
        const had = reloadRecords().length;
        p.child.kill('SIGHUP');
        const deadline = Date.now() + 30_000;
        while (reloadRecords().length === had && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
        const all = reloadRecords();
        assert.equal(all.length, had + 1, 'one reload record per SIGHUP, for all workers');
        return all[had]!;
      };
      try {
        await p.waitFor(/metrics on/);
        const started = Date.now() / 1000;
        let m = await page();
        assert.deepEqual(samples(m, 'postern_build_info'), [{ labels: `{version="${VERSION}",node="${process.versions.node}"}`, value: 1 }]);
        assert.deepEqual(samples(m, 'postern_config_last_reload_success'), [{ labels: '', value: 1 }]);
        const t0 = samples(m, 'postern_config_last_reload_timestamp_seconds');
        assert.equal(t0.length, 1);
        assert.ok(Math.abs(t0[0]!.value - started) < 30, 'the start counts as the first load');

        // log.format and workers change: kept until a restart, and said so; hostname applied.
        await writeFile(file, yaml('two.test', 'log: { format: text }\n').replace(`workers: ${workers}`, `workers: ${workers + 1}`));
        await new Promise((r) => setTimeout(r, 1100));
        const rec = await hup();
        assert.equal(rec.event, 'reload');
        assert.deepEqual(rec.changed, ['hostname', 'log.format', 'workers']);
        assert.deepEqual(rec.restart_needed, ['log.format', 'workers']);
        assert.match(String(rec.msg), /^configuration reloaded except log\.format, workers: they need a restart/);
        assert.equal(rec.level, 'warn');
        // The format was indeed kept (this record is JSON), the hostname applied.
        const c = await SmtpClient.connect(port);
        assert.equal((await c.waitReplies(1))[0]!.lines[0], 'two.test ESMTP Postern');
        await c.cmd('QUIT');
        m = await page();
        assert.deepEqual(samples(m, 'postern_config_last_reload_success'), [{ labels: '', value: 1 }]);
        const t1 = samples(m, 'postern_config_last_reload_timestamp_seconds')[0]!.value;
        assert.ok(t1 > t0[0]!.value + 1, `a fresh timestamp: ${t1} after ${t0[0]!.value}`);

        // An invalid config: refused, success 0, a fresh timestamp; the old config serves on.
        await writeFile(file, yaml('three.test').replace('identity: xclient', 'identity: carrier-pigeon'));
        const bad = await hup();
        assert.equal(bad.event, 'reload_failed');
        assert.match(String(bad.err), /backends\.identity/);
        m = await page();
        assert.deepEqual(samples(m, 'postern_config_last_reload_success'), [{ labels: '', value: 0 }]);
        const t2 = samples(m, 'postern_config_last_reload_timestamp_seconds')[0]!.value;
        assert.ok(t2 >= t1, 'the failed attempt has its time too');
        const c2 = await SmtpClient.connect(port);
        assert.equal((await c2.waitReplies(1))[0]!.lines[0], 'two.test ESMTP Postern');
        await c2.cmd('QUIT');

        // Fixed: success 1 again. log.format and workers did not change this time, but they
        // are still not in force: still named.
        await writeFile(file, yaml('four.test', 'log: { format: text }\n').replace(`workers: ${workers}`, `workers: ${workers + 1}`));
        const good = await hup();
        assert.equal(good.event, 'reload');
        assert.deepEqual(good.changed, ['hostname']);
        assert.deepEqual(good.restart_needed, ['log.format', 'workers']);
        m = await page();
        assert.deepEqual(samples(m, 'postern_config_last_reload_success'), [{ labels: '', value: 1 }]);
        // Back to what the process started with: nothing pending, "configuration reloaded".
        await writeFile(file, yaml('five.test'));
        const full = await hup();
        assert.deepEqual(full.changed, ['hostname', 'log.format', 'workers']);
        assert.deepEqual(full.restart_needed, []);
        assert.equal(full.msg, 'configuration reloaded');
        assert.equal(full.level, 'info');
        m = await page();
        assert.deepEqual(samples(m, 'postern_config_last_reload_success'), [{ labels: '', value: 1 }]);
        assert.deepEqual(samples(m, 'postern_build_info').map((s) => s.value), [1], 'build info once, not summed over workers');
      } finally {
        assert.equal(await p.stop(), 0);
      }
    });
  }

  it('with a cluster, a reload the workers could not apply is a failure, told once by the primary', async () => {
    const [port, metrics, busy] = await Promise.all([freePort(), freePort(), freePort()]);
    const blocker = await import('node:net').then((net) => net.createServer().listen(busy, '127.0.0.1'));
    const yaml = (more = '') => `hostname: cluster.test
workers: 2
listeners:
  - { name: smtp, listen: 127.0.0.1:${port} }
${more}backends:
  servers: [{ address: 127.0.0.1:${sink.address().port} }]
metrics: { listen: 127.0.0.1:${metrics} }
`;
    const file = join(dir, 'cluster-fail.yaml');
    await writeFile(file, yaml());
    const p = startPosternProcess(['run', '-c', file]);
    try {
      await p.waitFor(/workers running/);
      // Valid, but its new listener's port is taken: every worker fails to open it.
      await writeFile(file, yaml(`  - { name: extra, listen: 127.0.0.1:${busy} }\n`));
      p.child.kill('SIGHUP');
      const rec = await p.waitRecord((r) => r.event === 'reload_failed' && Array.isArray(r.changed), 40_000);
      assert.deepEqual(rec.changed, ['listeners']);
      assert.match(String(rec.err), /worker \d+: listener extra: address 127\.0\.0\.1:\d+ is already in use/);
      assert.equal(p.records().filter((r) => (r.event === 'reload' || r.event === 'reload_failed') && Array.isArray(r.changed)).length, 1);
      const m = (await httpGet(metrics, '/metrics')).body;
      assert.deepEqual(samples(m, 'postern_config_last_reload_success'), [{ labels: '', value: 0 }]);
      const c = await SmtpClient.connect(port);
      assert.equal((await c.waitReplies(1))[0]!.code, 220, 'the workers still serve');
      await c.cmd('QUIT');
    } finally {
      blocker.close();
      assert.equal(await p.stop(), 0);
    }
  });
});
