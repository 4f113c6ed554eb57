// `postern status`: argument parsing, the table, and the command against a live listener.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Metrics } from '../../src/observe/metrics.js';
import { bytes, duration, parseStatusArgs, renderStatus, sessionCacheLine, statusMain, type StatusData } from '../../src/tools/status-client.js';
import { startStatusServer, type StatusServer } from '../../src/observe/status-server.js';

const data: StatusData = {
  backends: [
    { address: '10.0.0.11:25', up: true, reason: 'health check passed', active: 2 },
    { address: '[2001:db8::25]:25', up: false, reason: 'health check: connect ECONNREFUSED', active: 0 },
    { address: '10.0.0.13:25', up: null, reason: 'not checked yet', active: 0 },
  ],
  sessions: [
    { conn: 'young', client: { address: '192.0.2.1', port: 1025 }, listener: 'smtp', tls: null, backend: null, state: 'front', helo: null, auth: null, age_ms: 500, bytes_in: 12, bytes_out: 300 },
    {
      conn: 'old',
      client: { address: '2001:db8::7', port: 50000 },
      listener: 'submission',
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', resumed: true, sni: null },
      backend: '10.0.0.11:25',
      state: 'data',
      helo: 'evil\x1b[2Jhelo',
      auth: { user: 'alice@example.org', mechanism: 'PLAIN' },
      age_ms: 3_723_000,
      bytes_in: 5 * 1024 * 1024,
      bytes_out: 2048,
    },
  ],
};

function collect(): { write(s: string): boolean; text(): string } {
  let s = '';
  return { write: (x: string) => ((s += x), true), text: () => s };
}

describe('postern status: arguments', () => {
  it('defaults to 127.0.0.1:9325, one shot', () => {
    assert.deepEqual(parseStatusArgs([]), { url: 'http://127.0.0.1:9325/sessions', label: '127.0.0.1:9325', watch: null });
  });

  it('takes --metrics in the config address forms, and --watch with an optional interval', () => {
    const url = (argv: string[]) => {
      const a = parseStatusArgs(argv);
      assert.equal(typeof a, 'object', String(a));
      return a as Exclude<ReturnType<typeof parseStatusArgs>, string>;
    };
    assert.equal(url(['--metrics', '[::1]:9000']).url, 'http://[::1]:9000/sessions');
    assert.equal(url(['--metrics=10.1.2.3:80']).url, 'http://10.1.2.3:80/sessions');
    assert.equal(url(['--metrics', ':9400']).url, 'http://127.0.0.1:9400/sessions');
    assert.equal(url(['--metrics', '9400']).url, 'http://127.0.0.1:9400/sessions');
    assert.equal(url(['--metrics', 'http://mon.example:81/']).url, 'http://mon.example:81/sessions');
    assert.equal(url(['--watch']).watch, 2);
    assert.equal(url(['--watch', '5']).watch, 5);
    assert.equal(url(['--watch=0.5', '--metrics', 'localhost:1']).watch, 0.5);
    assert.equal(url(['-w', '--metrics', 'localhost:1']).watch, 2);
  });

  it('-c FILE: the address from metrics.listen, a wildcard bind reached on loopback', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-status-'));
    try {
      const cfg = (metrics: string) => {
        const f = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
        writeFileSync(f, `listeners: [{ name: smtp, listen: '127.0.0.1:2525' }]\nbackends: { servers: [{ address: '127.0.0.1:2526' }] }\n${metrics}`);
        return f;
      };
      const ok = (f: string) => parseStatusArgs(['-c', f, '--watch', '3']) as Exclude<ReturnType<typeof parseStatusArgs>, string>;
      assert.deepEqual(ok(cfg("metrics: { listen: '10.1.2.3:9400' }\n")), { url: 'http://10.1.2.3:9400/sessions', label: '10.1.2.3:9400', watch: 3 });
      assert.equal(ok(cfg("metrics: { listen: '0.0.0.0:9401' }\n")).url, 'http://127.0.0.1:9401/sessions');
      assert.equal(ok(cfg("metrics: { listen: '[::]:9402' }\n")).url, 'http://[::1]:9402/sessions');
      assert.equal(ok(cfg("metrics: { listen: '[2001:db8::9]:9403' }\n")).url, 'http://[2001:db8::9]:9403/sessions');
      assert.equal(ok(cfg('metrics:\n')).url, 'http://127.0.0.1:9325/sessions', 'an empty section is the default address');
      assert.match(String(parseStatusArgs(['--config', cfg('')])), /has no metrics section/);
      assert.match(String(parseStatusArgs(['-c', cfg("metrics: { listen: '127.0.0.1:0' }\n")])), /port 0/);
      assert.match(String(parseStatusArgs(['-c', cfg('metrics: { listen: nowhere }\n')])), /metrics\.listen/);
      assert.match(String(parseStatusArgs(['-c', join(dir, 'missing.yaml')])), /missing\.yaml/);
      assert.match(String(parseStatusArgs(['-c'])), /--config needs a FILE/);
      assert.match(String(parseStatusArgs(['-c', cfg('metrics:\n'), '-m', '127.0.0.1:1'])), /not both/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what it does not understand', () => {
    assert.match(String(parseStatusArgs(['--metrics'])), /needs HOST:PORT/);
    assert.match(String(parseStatusArgs(['--metrics', 'host:99999'])), /bad address/);
    assert.match(String(parseStatusArgs(['--watch=0'])), /bad interval/);
    assert.match(String(parseStatusArgs(['extra'])), /unknown argument extra/);
  });
});

describe('postern status: the table', () => {
  const text = renderStatus(data, { source: '127.0.0.1:9325', now: new Date('2026-05-01T12:00:00Z') });
  const lines = text.split('\n');

  it('has a header line with counts', () => {
    assert.equal(lines[0], 'postern status from 127.0.0.1:9325 at 2026-05-01 12:00:00Z: 2 sessions, 1/3 backends up');
  });

  it('lists backends with state, active sessions and reason', () => {
    assert.match(text, /^BACKEND\s+STATE\s+ACTIVE\s+REASON$/m);
    assert.match(text, /^10\.0\.0\.11:25\s+up\s+2\s+health check passed$/m);
    assert.match(text, /^\[2001:db8::25\]:25\s+DOWN\s+0\s+health check: connect ECONNREFUSED$/m);
    assert.match(text, /^10\.0\.0\.13:25\s+unknown\s+0\s+not checked yet$/m);
  });

  it('lists sessions oldest first, cipher starred when resumed, control characters defused', () => {
    const head = lines.findIndex((l) => l.startsWith('CONN'));
    assert.match(lines[head]!, /^CONN\s+CLIENT\s+LISTENER\s+STATE\s+HELO\s+USER\s+TLS\s+BACKEND\s+AGE\s+IN\s+OUT$/);
    assert.match(lines[head + 1]!, /^old\s+\[2001:db8::7\]:50000\s+submission\s+data\s+evil\?\[2Jhelo\s+alice@example\.org\s+TLS_AES_256_GCM_SHA384\*\s+10\.0\.0\.11:25\s+1h02m\s+5\.0M\s+2\.0K$/);
    assert.match(lines[head + 2]!, /^young\s+192\.0\.2\.1:1025\s+smtp\s+front\s+-\s+-\s+-\s+-\s+0\.5s\s+12B\s+300B$/);
    assert.ok(!text.includes('\x1b'));
  });

  it('shows - as the user of a session from an older server (no auth field)', () => {
    const { auth: _auth, ...old } = data.sessions[1]!;
    const t = renderStatus({ sessions: [old as StatusData['sessions'][number]], backends: [] });
    assert.match(t, /^old\s+\S+\s+submission\s+data\s+\S+\s+-\s+TLS_AES/m);
  });

  it('cuts lines to the terminal width', () => {
    const narrow = renderStatus(data, { columns: 40 });
    assert.ok(narrow.split('\n').every((l) => l.length <= 40));
  });

  it("shows the host's TLS session cache in one line, when there is one", () => {
    assert.doesNotMatch(text, /TLS session cache/);
    const cache = { sessions: 812, capacity: 20000, hits: 950, redis_hits: 40, misses: 50, stored: 900, redis: 'up' as const };
    const withCache = renderStatus({ ...data, tls_session_cache: cache }, { now: new Date('2026-05-01T12:00:00Z') }).split('\n');
    assert.equal(withCache[1], 'TLS session cache: 812/20000 sessions, 950 hits (40 from Redis), 50 misses (95.0 % hits), Redis up');
    assert.equal(sessionCacheLine({ ...cache, redis: 'down' }), 'TLS session cache: 812/20000 sessions, 950 hits (40 from Redis), 50 misses (95.0 % hits), Redis DOWN: this host only');
    assert.equal(sessionCacheLine({ ...cache, hits: 0, misses: 0, redis_hits: 0, redis: null }), 'TLS session cache: 812/20000 sessions, 0 hits, 0 misses');
  });

  it('says so when nothing is connected', () => {
    assert.match(renderStatus({ sessions: [], backends: [] }), /^no live sessions$/m);
  });

  it('formats ages and sizes compactly', () => {
    assert.deepEqual([0, 9_950, 59_000, 61_000, 3_600_000, 200 * 3_600_000].map(duration), ['0.0s', '9.9s', '59s', '1m01s', '1h00m', '8d08h']);
    assert.deepEqual([0, 1023, 1024, 1536, 20 * 1024, 3 * 1024 ** 3].map(bytes), ['0B', '1023B', '1.0K', '1.5K', '20K', '3.0G']);
  });
});

describe('postern status: against a listener', () => {
  let srv: StatusServer;
  let addr: string;
  before(async () => {
    srv = await startStatusServer({ host: '127.0.0.1', port: 0 }, { metrics: new Metrics(), sessions: () => data.sessions, backends: () => data.backends, ready: () => true });
    addr = `127.0.0.1:${srv.address().port}`;
  });
  after(() => srv.close());

  it('prints the table once and exits 0', async () => {
    const out = collect();
    const code = await statusMain(['--metrics', addr], { out, err: collect() });
    assert.equal(code, 0);
    assert.match(out.text(), /2 sessions, 1\/3 backends up/);
    assert.match(out.text(), /TLS_AES_256_GCM_SHA384\*/);
  });

  it('--watch redraws until stopped', async () => {
    const out = collect();
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 450);
    const code = await statusMain(['--metrics', addr, '--watch', '0.1'], { out, err: collect(), signal: ctl.signal });
    assert.equal(code, 0);
    const frames = out.text().split('\x1b[H\x1b[2J').filter(Boolean);
    assert.ok(frames.length >= 3, `${frames.length} frames`);
    assert.ok(frames.every((f) => f.includes('backends up') && f.includes('every 0.1s')));
  });

  it('exits 1 with a clear line when nothing listens there', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const err = collect();
    const code = await statusMain(['--metrics', `127.0.0.1:${port}`], { out: collect(), err });
    assert.equal(code, 1);
    assert.match(err.text(), new RegExp(`^postern status: cannot read http://127\\.0\\.0\\.1:${port}/sessions: ECONNREFUSED`));
  });

  it('exits 1 when the address answers but is not a Postern listener', async () => {
    const other = http.createServer((req, res) => {
      if (req.url === '/sessions') res.writeHead(200, { 'content-type': 'application/json' }).end('{"hello":1}');
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const port = (other.address() as net.AddressInfo).port;
    try {
      const err = collect();
      assert.equal(await statusMain(['--metrics', `127.0.0.1:${port}`], { out: collect(), err }), 1);
      assert.match(err.text(), /not a Postern \/sessions reply/);
    } finally {
      other.close();
    }
  });

  it('accepts a URL, refuses a bad address', async () => {
    assert.equal(await statusMain(['--metrics', `http://${addr}/`], { out: collect(), err: collect() }), 0);
    const err = collect();
    assert.equal(await statusMain(['--metrics', 'bogus:address:1'], { out: collect(), err }), 1);
    assert.match(err.text(), /bad address/);
  });
});
