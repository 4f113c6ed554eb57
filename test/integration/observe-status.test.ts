// The metrics listener in front of a real Postern relaying to the sink: counters move as
// sessions run, /sessions shows live sessions, /readyz flips when the only backend dies.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { proxySources, startStatusServer, type SessionSnapshot, type StatusServer } from '../../src/observe/status-server.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

/** Prometheus text exposition -> `name{k="v",...}` (labels sorted) -> value. */
function parseProm(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    assert.ok(m, `unparsable metrics line: ${line}`);
    const labels: string[] = [];
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/g;
    for (let l = re.exec(m[2] ?? ''); l; l = re.exec(m[2] ?? '')) labels.push(`${l[1]}="${l[2]}"`);
    labels.sort();
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.set(labels.length ? `${m[1]}{${labels.join(',')}}` : m[1]!, v);
  }
  return out;
}

describe('status endpoints on a running Postern', { timeout: 30_000 }, () => {
  let sink: Sink;
  let p: TestPostern;
  let srv: StatusServer;
  let base: string;
  let backend: string;

  const scrape = async () => {
    const r = await fetch(`${base}/metrics`);
    assert.equal(r.status, 200);
    return parseProm(await r.text());
  };
  const value = (m: Map<string, number>, key: string) => m.get(key) ?? 0;

  before(async () => {
    sink = await startSink({ xclient: true });
    backend = `127.0.0.1:${sink.address().port}`;
    p = await startPostern(basicYaml([backend]));
    srv = await startStatusServer({ host: '127.0.0.1', port: 0 }, proxySources(p.postern));
    base = `http://127.0.0.1:${srv.address().port}`;
  });
  after(async () => {
    await srv.close();
    await p.stop();
    await sink.close();
  });

  it('is ready, healthy, and reports the backend up', async () => {
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/readyz`)).status, 200);
    const m = await scrape();
    assert.equal(m.get(`postern_backend_up{backend="${backend}",pool="default"}`), 1);
    const s = (await (await fetch(`${base}/sessions`)).json()) as { backends: unknown[] };
    assert.deepEqual(s.backends, [{ address: backend, pool: 'default', up: true, reason: 'health check passed', active: 0 }]);
  });

  it('counts connections and accepted messages', async () => {
    const before = await scrape();
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
    await c.waitReplies(1);
    const r = await sendMessage(c, { helo: 'metrics.test' });
    assert.equal(r.code, 250);
    await c.waitClose();
    await p.waitFor((x) => x.event === 'session' && x.helo === 'metrics.test');
    const m = await scrape();
    assert.equal(value(m, 'postern_connections_total{listener="smtp"}'), value(before, 'postern_connections_total{listener="smtp"}') + 1);
    assert.equal(value(m, 'postern_messages_total{result="accepted"}'), value(before, 'postern_messages_total{result="accepted"}') + 1);
    assert.equal(value(m, 'postern_connections_active{listener="smtp"}'), 0);
    assert.equal(value(m, `postern_backend_sessions_active{backend="${backend}",pool="default"}`), 0);
    assert.ok(value(m, 'process_cpu_seconds_total') >= 0);
  });

  it('shows a live session in /sessions, and counts no_quit when it leaves without QUIT', async () => {
    const before = await scrape();
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.3' });
    await c.waitReplies(1);
    assert.equal((await c.cmd('EHLO live.test')).code, 250);
    const live = (await (await fetch(`${base}/sessions`)).json()) as { sessions: SessionSnapshot[] };
    const mine = live.sessions.find((s) => s.client.port === c.socket.localPort);
    assert.ok(mine, JSON.stringify(live));
    assert.equal(mine.client.address, '127.0.0.3');
    assert.equal(mine.listener, 'smtp');
    assert.equal(mine.helo, 'live.test');
    assert.equal(mine.state, 'front');
    assert.equal(mine.tls, null);
    assert.equal(mine.backend, null);
    assert.equal(mine.auth, null, 'no login');
    assert.ok(mine.bytes_in > 0 && mine.bytes_out > 0);
    assert.ok(mine.age_ms >= 0 && mine.age_ms < 10_000);
    assert.equal(value(await scrape(), 'postern_connections_active{listener="smtp"}'), 1);

    c.end();
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'live.test');
    assert.deepEqual(rec.anomalies, ['no_quit']);
    const m = await scrape();
    assert.equal(value(m, 'postern_anomalies_total{kind="no_quit"}'), value(before, 'postern_anomalies_total{kind="no_quit"}') + 1);
    const after = (await (await fetch(`${base}/sessions`)).json()) as { sessions: SessionSnapshot[] };
    assert.equal(after.sessions.length, 0);
  });

  it('/readyz turns 503 when the only backend goes down', async () => {
    await sink.close();
    const deadline = Date.now() + 10_000;
    let r = await fetch(`${base}/readyz`);
    while (r.status === 200 && Date.now() < deadline) {
      await r.text();
      await new Promise((res) => setTimeout(res, 200));
      r = await fetch(`${base}/readyz`);
    }
    assert.equal(r.status, 503);
    assert.match(await r.text(), new RegExp(`^not ready: no backend up: ${backend.replace(/\./g, '\\.')} \\(`));
    assert.equal((await scrape()).get(`postern_backend_up{backend="${backend}",pool="default"}`), 0);
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'alive even when not ready');
  });
});
