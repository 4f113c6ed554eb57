// The metrics listener over real HTTP on loopback, with sources the test controls.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Metrics } from '../../src/observe/metrics.js';
import { startStatusServer, type BackendSnapshot, type SessionSnapshot, type StatusServer } from '../../src/observe/status-server.js';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, path: string, method = 'GET', body?: string): Promise<Res> {
  return new Promise((resolve, reject) => {
    // An explicit length: Node sends DELETE/OPTIONS bodies unframed otherwise.
    const headers = body === undefined ? {} : { 'Content-Length': Buffer.byteLength(body) };
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Raw bytes in, everything the server says until it closes (or 3 s). */
function raw(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => (got += c));
    s.on('close', () => resolve(got));
    s.on('error', (e) => (got ? resolve(got) : reject(e)));
    s.setTimeout(3000, () => s.destroy());
    s.write(data);
  });
}

const session: SessionSnapshot = {
  conn: 'abc00001',
  client: { address: '192.0.2.7', port: 40000 },
  listener: 'smtp',
  tls: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', resumed: true, sni: 'mx.example' },
  backend: '10.0.0.11:25',
  state: 'relay',
  helo: 'client.example',
  auth: { user: 'alice', mechanism: 'PLAIN' },
  age_ms: 1234,
  bytes_in: 10,
  bytes_out: 20,
};

describe('status server', () => {
  const metrics = new Metrics();
  let ready = true;
  let backends: BackendSnapshot[] = [{ address: '10.0.0.11:25', up: true, reason: 'health check passed', active: 1 }];
  let srv: StatusServer;
  let port: number;

  before(async () => {
    metrics.connectionsTotal.inc({ listener: 'smtp' }, 3);
    metrics.anomalies.inc({ kind: 'no_quit' });
    srv = await startStatusServer(
      { host: '127.0.0.1', port: 0 },
      { metrics, sessions: () => [session], backends: () => backends, ready: () => ready },
    );
    port = srv.address().port;
  });
  after(async () => {
    await srv.close();
  });

  it('binds where asked', () => {
    assert.equal(srv.address().host, '127.0.0.1');
    assert.ok(port > 0);
  });

  it('GET /metrics is Prometheus text with the contract metrics', async () => {
    const r = await request(port, '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], metrics.registry.contentType);
    assert.match(r.headers['content-type']!, /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^# TYPE postern_connections_total counter$/m);
    assert.match(r.body, /^postern_connections_total\{listener="smtp"\} 3$/m);
    assert.match(r.body, /^postern_anomalies_total\{kind="no_quit"\} 1$/m);
    for (const name of ['postern_connections_active', 'postern_tls_handshakes_total', 'postern_limit_rejections_total', 'postern_messages_total', 'postern_backend_up', 'postern_backend_sessions_active']) {
      assert.match(r.body, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
  });

  it('a query string does not change the route', async () => {
    assert.equal((await request(port, '/metrics?name[]=x')).status, 200);
  });

  it('GET /healthz says ok', async () => {
    const r = await request(port, '/healthz');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok\n');
  });

  it('GET /readyz follows ready(), and says why not', async () => {
    assert.equal((await request(port, '/readyz')).status, 200);
    ready = false;
    backends = [{ address: '10.0.0.11:25', up: false, reason: 'health check: connect ECONNREFUSED', active: 0 }];
    const r = await request(port, '/readyz');
    assert.equal(r.status, 503);
    assert.match(r.body, /^not ready: no backend up: 10\.0\.0\.11:25 \(health check: connect ECONNREFUSED\)/);
    ready = true;
    backends = [{ address: '10.0.0.11:25', up: true, reason: 'health check passed', active: 1 }];
    assert.equal((await request(port, '/readyz')).status, 200);
  });

  it('GET /sessions lists sessions and backends as JSON', async () => {
    const r = await request(port, '/sessions');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type']!, /^application\/json/);
    assert.deepEqual(JSON.parse(r.body), { sessions: [session], backends });
  });

  it('404 for other paths, 405 for other methods (body unread, connection closed)', async () => {
    const nf = await request(port, '/nope');
    assert.equal(nf.status, 404);
    for (const m of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      const r = await request(port, '/metrics', m, 'x'.repeat(100_000));
      assert.equal(r.status, 405, m);
      assert.equal(r.headers.allow, 'GET, HEAD');
      assert.equal(r.headers.connection, 'close');
    }
    const head = await request(port, '/healthz', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  it('answers 100 concurrent requests', async () => {
    const paths = ['/metrics', '/healthz', '/readyz', '/sessions'];
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => fetch(`http://127.0.0.1:${port}${paths[i % 4]}`).then((r) => r.text().then(() => r.status))));
    assert.deepEqual(new Set(rs), new Set([200]));
  });

  it('a malformed request, oversized headers or a silent client do not crash it', async () => {
    assert.match(await raw(port, 'GARBAGE\r\n\r\n'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03'), /^HTTP\/1\.1 400 /);
    assert.match(await raw(port, `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), /^HTTP\/1\.1 431 /);
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    s.destroy();
    // Still serving.
    assert.equal((await request(port, '/healthz')).status, 200);
  });

  it('a metrics collection failure is a 500, not a crash', async () => {
    const broken = new Metrics();
    broken.registry.registerMetric({
      name: 'broken_metric',
      get: () => Promise.reject(new Error('collector failed')),
      reset: () => undefined,
      get [Symbol.toStringTag]() {
        return 'Gauge';
      },
    } as unknown as Parameters<typeof broken.registry.registerMetric>[0]);
    const s2 = await startStatusServer({ host: '127.0.0.1', port: 0 }, { metrics: broken, sessions: () => [], backends: () => [], ready: () => true });
    try {
      const r = await request(s2.address().port, '/metrics');
      assert.equal(r.status, 500);
      assert.equal((await request(s2.address().port, '/healthz')).status, 200);
    } finally {
      await s2.close();
    }
  });

  it('refuses to start on a port in use', async () => {
    await assert.rejects(
      startStatusServer({ host: '127.0.0.1', port }, { metrics, sessions: () => [], backends: () => [], ready: () => true }),
      /EADDRINUSE/,
    );
  });
});

function once(s: net.Socket, ev: string): Promise<void> {
  return new Promise((resolve) => s.once(ev, () => resolve()));
}
