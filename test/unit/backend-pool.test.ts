// backend/pool.ts: the configured servers, their health and load, and what they offer,
// driven through BackendPool's public methods with a real parsed config. Health checks
// run against scripted SMTP servers on loopback.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BackendError } from '../../src/backend/errors.js';
import { BackendPool, type ServerState } from '../../src/backend/pool.js';
import type { Metrics } from '../../src/observe/metrics.js';
import { parseEhlo, type Capabilities } from '../../src/smtp/ehlo.js';
import { ReplyParser } from '../../src/smtp/reply.js';
import { freePort } from '../helpers/net.js';
import { testPool, type Rec, type ServerSpec } from '../helpers/pool.js';
import { startScriptBackend, until, type ScriptBackend } from '../helpers/script-backend.js';

/** A pool from YAML: `servers` and extra lines under `backends:`. */
function pool(servers: (string | ServerSpec)[], backends = ''): { pool: BackendPool; records: Rec[]; metrics: Metrics } {
  return testPool(servers, backends);
}

const SERVERS = ['10.0.0.1:25', '10.0.0.2:25', '10.0.0.3:25'];

/** Capabilities from an EHLO reply listing `keywords`. */
function caps(...keywords: string[]): Capabilities {
  const lines = ['mx.test', ...keywords];
  const text = lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
  return parseEhlo(new ReplyParser().push(Buffer.from(text))[0]!);
}

const keys = (list: ServerState[]) => list.map((s) => s.key);
const failure = (msg = 'connect refused') => new BackendError('BACKEND_CONNECT', msg);

async function gauge(metrics: Metrics, name: 'backendSessions' | 'backendUp', backend: string): Promise<number | undefined> {
  const { values } = await metrics[name].get();
  return values.find((v) => v.labels.backend === backend)?.value;
}

describe('BackendPool: candidates', () => {
  it('before any check every configured server is a candidate; least-connections keeps config order at equal load', () => {
    const { pool: p } = pool(SERVERS);
    assert.deepEqual(keys(p.candidates('192.0.2.1')), SERVERS);
    assert.ok(p.anyUp());
  });

  it('down and draining servers are not candidates; none left: empty and anyUp false', () => {
    const { pool: p } = pool([SERVERS[0]!, { address: SERVERS[1]!, drain: true }, SERVERS[2]!]);
    assert.deepEqual(keys(p.candidates('c')), [SERVERS[0], SERVERS[2]]);
    p.reportFailure(p.servers[0]!, failure());
    assert.deepEqual(keys(p.candidates('c')), [SERVERS[2]]);
    p.reportFailure(p.servers[2]!, failure());
    assert.deepEqual(p.candidates('c'), []);
    assert.equal(p.anyUp(), false);
  });

  it('least-connections: the pick follows acquire/release, weighed by weight', () => {
    const { pool: p } = pool([{ address: SERVERS[0]! }, { address: SERVERS[1]!, weight: 2 }]);
    const [a, b] = p.servers as [ServerState, ServerState];
    p.acquire(a);
    assert.deepEqual(keys(p.candidates('c')), [b.key, a.key]);
    p.acquire(b);
    assert.deepEqual(keys(p.candidates('c')), [b.key, a.key], '1/2 < 1/1');
    p.acquire(b);
    p.acquire(b);
    assert.deepEqual(keys(p.candidates('c')), [a.key, b.key], '3/2 > 1/1');
    p.release(b);
    p.release(b);
    assert.deepEqual(keys(p.candidates('c')), [b.key, a.key]);
  });

  it('round-robin: shares follow weights; the rest of each list is the failover order', () => {
    const { pool: p } = pool(
      SERVERS.map((address, i) => ({ address, weight: i + 1 })),
      'strategy: round-robin',
    );
    const picks = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const list = p.candidates('c');
      assert.equal(new Set(keys(list)).size, 3, 'every server once');
      picks.set(list[0]!.key, (picks.get(list[0]!.key) ?? 0) + 1);
    }
    assert.deepEqual(SERVERS.map((k) => picks.get(k)), [100, 200, 300]);
  });

  it('round-robin skips a down server and gives its share to the others', () => {
    const { pool: p } = pool(SERVERS, 'strategy: round-robin');
    p.reportFailure(p.servers[1]!, failure());
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add(p.candidates('c')[0]!.key);
    assert.deepEqual([...seen].sort(), [SERVERS[0], SERVERS[2]]);
  });

  it('client-hash: a client stays on its server; when that server goes down only its clients move', () => {
    const { pool: p } = pool(SERVERS, 'strategy: client-hash');
    const clients = Array.from({ length: 300 }, (_, i) => `198.51.100.${i % 250}-${i}`);
    const before = new Map(clients.map((c) => [c, p.candidates(c)[0]!.key]));
    for (const c of clients) assert.equal(p.candidates(c)[0]!.key, before.get(c), 'stable');
    const gone = p.servers[0]!;
    p.reportFailure(gone, failure());
    let moved = 0;
    for (const c of clients) {
      const now = p.candidates(c)[0]!.key;
      if (now !== before.get(c)) {
        moved++;
        assert.equal(before.get(c), gone.key, 'only clients of the down server move');
      }
    }
    assert.ok(moved > 50 && moved < 150, `moved ${moved} of 300`);
  });
});

describe('BackendPool: load and health', () => {
  it('acquire/release count active sessions and set postern_backend_sessions_active', async () => {
    const { pool: p, metrics } = pool(SERVERS);
    const s = p.servers[1]!;
    p.acquire(s);
    p.acquire(s);
    assert.equal(s.active, 2);
    assert.equal(await gauge(metrics, 'backendSessions', s.key), 2);
    p.release(s);
    assert.equal(s.active, 1);
    assert.equal(await gauge(metrics, 'backendSessions', s.key), 1);
    assert.equal(p.servers[0]!.active, 0);
    // Read at scrape time: a server no session has used shows 0, and a stopped pool's go.
    assert.equal(await gauge(metrics, 'backendSessions', p.servers[0]!.key), 0);
    p.stop();
    assert.equal(await gauge(metrics, 'backendSessions', s.key), undefined);
  });

  it('an unchecked server is up after one session handshake and down after one failure', async () => {
    const { pool: p, records, metrics } = pool(SERVERS);
    const [a, b] = p.servers as [ServerState, ServerState];
    p.reportSuccess(a, caps('PIPELINING'));
    assert.equal(a.up, true);
    assert.equal(await gauge(metrics, 'backendUp', a.key), 1);
    p.reportFailure(b, failure('connect to 10.0.0.2:25: ECONNREFUSED'));
    assert.equal(b.up, false);
    assert.equal(b.reason, 'session: connect to 10.0.0.2:25: ECONNREFUSED');
    assert.equal(await gauge(metrics, 'backendUp', b.key), 0);
    const down = records.find((r) => r.event === 'backend' && r.address === b.key);
    assert.deepEqual(
      { event: down?.event, state: down?.state, level: down?.level, reason: down?.reason },
      { event: 'backend', state: 'down', level: 'warn', reason: 'session: connect to 10.0.0.2:25: ECONNREFUSED' },
    );
    assert.ok(records.some((r) => r.event === 'backend' && r.address === a.key && r.state === 'up' && r.level === 'info'));
  });

  it('an up server goes down after `fall` failures in a row; a success in between starts the count over', () => {
    const { pool: p, records } = pool(SERVERS, 'health_check: { fall: 3, rise: 2 }');
    const s = p.servers[0]!;
    p.reportSuccess(s, caps());
    p.reportFailure(s, failure());
    p.reportFailure(s, failure());
    assert.equal(s.up, true);
    p.reportSuccess(s, caps());
    p.reportFailure(s, failure());
    p.reportFailure(s, failure());
    assert.equal(s.up, true, 'two in a row after the success');
    p.reportFailure(s, failure('third'));
    assert.equal(s.up, false);
    assert.equal(s.reason, 'session: third');
    p.reportFailure(s, failure('fourth'));
    assert.equal(s.reason, 'session: fourth', 'the reason follows the latest failure');
    assert.equal(records.filter((r) => r.event === 'backend' && r.state === 'down').length, 1, 'one down record');
  });

  it('a misconfigured server (no XCLIENT, no STARTTLS offered) is down at the first such failure', () => {
    const { pool: p } = pool(SERVERS, 'health_check: { fall: 5 }');
    const s = p.servers[0]!;
    p.reportSuccess(s, caps());
    p.reportFailure(s, new BackendError('BACKEND_NO_XCLIENT', 'does not offer XCLIENT to us'));
    assert.equal(s.up, false);
  });

  it('a session handshake never brings a down server back (only health checks, `rise` in a row); it records the caps', () => {
    const { pool: p } = pool(SERVERS);
    const s = p.servers[0]!;
    p.reportFailure(s, failure());
    for (let i = 0; i < 5; i++) p.reportSuccess(s, caps('CHUNKING'));
    assert.equal(s.up, false);
    assert.ok(s.caps?.has('CHUNKING'));
    assert.equal(s.failStreak, 0);
  });
});

describe('BackendPool: offered()', () => {
  it('extensions every live server offers, the smallest SIZE, the lowest of each LIMITS value', () => {
    const { pool: p } = pool(SERVERS);
    const [a, b, c] = p.servers as [ServerState, ServerState, ServerState];
    p.reportSuccess(a, caps('8BITMIME', 'SMTPUTF8', 'CHUNKING', 'DSN', 'ENHANCEDSTATUSCODES', 'SIZE 20000000', 'LIMITS MAILMAX=10 RCPTMAX=50', 'XFOO'));
    p.reportSuccess(b, caps('8BITMIME', 'CHUNKING', 'DSN', 'ENHANCEDSTATUSCODES', 'SIZE 10000000', 'LIMITS RCPTMAX=100 RCPTDOMAINMAX=5', 'XFOO'));
    p.reportSuccess(c, caps('8BITMIME', 'SMTPUTF8', 'CHUNKING', 'ENHANCEDSTATUSCODES', 'XFOO'));
    const o = p.offered();
    assert.deepEqual([...o.extensions].sort(), ['8BITMIME', 'CHUNKING', 'ENHANCEDSTATUSCODES']);
    assert.ok(!o.extensions.has('XFOO'), 'only extensions Postern passes through');
    assert.equal(o.size, 10000000, 'c announces no SIZE: the smallest announced one');
    assert.deepEqual(o.limits, { mailmax: 10, rcptmax: 50, rcptdomainmax: 5 });
  });

  it('servers that are down or unchecked do not count', () => {
    const { pool: p } = pool(SERVERS, 'health_check: { fall: 1 }');
    const [a, b] = p.servers as [ServerState, ServerState];
    p.reportSuccess(a, caps('SMTPUTF8', 'SIZE 1000', 'LIMITS RCPTMAX=2'));
    p.reportSuccess(b, caps('SIZE 10'));
    assert.equal(p.offered().size, 10);
    assert.ok(!p.offered().extensions.has('SMTPUTF8'));
    p.reportFailure(b, failure());
    const o = p.offered();
    assert.equal(o.size, 1000);
    assert.ok(o.extensions.has('SMTPUTF8'));
    assert.deepEqual(o.limits, { mailmax: null, rcptmax: 2, rcptdomainmax: null });
  });

  it('no live server: nothing offered, no SIZE, no LIMITS', () => {
    const { pool: p } = pool(SERVERS);
    assert.deepEqual(p.offered(), { extensions: new Set(), size: null, limits: { mailmax: null, rcptmax: null, rcptdomainmax: null } });
  });
});

describe('BackendPool: health checks against real servers', () => {
  const backends: ScriptBackend[] = [];
  after(async () => {
    for (const b of backends) await b.close();
  });

  it('start() checks every server once before it returns: a working one is up with its caps, a closed port down', async () => {
    const good = await startScriptBackend({ ehlo: ['PIPELINING', 'SIZE 5000', 'SMTPUTF8'] });
    backends.push(good);
    const dead = `127.0.0.1:${await freePort()}`;
    const { pool: p } = pool([good.address, dead], 'identity: none\nconnect_timeout: 1s\nhealth_check: { interval: 1h, timeout: 1s }');
    try {
      await p.start();
      const [g, d] = p.servers as [ServerState, ServerState];
      assert.equal(g.up, true);
      assert.equal(g.reason, 'health check passed');
      assert.equal(d.up, false);
      assert.match(d.reason, /^health check: connect to /);
      assert.equal(p.offered().size, 5000);
      assert.ok(p.offered().extensions.has('SMTPUTF8'));
      // The check is a polite SMTP session: EHLO as Postern, QUIT, never a bare drop.
      await until(() => good.conns[0]?.closed === true, 'the check to end');
      assert.deepEqual(good.conns[0]!.commands, ['EHLO postern.test', 'QUIT']);
    } finally {
      p.stop();
    }
  });

  it('a down server comes back after `rise` passing checks in a row; a failing one goes down after `fall`', async () => {
    let refuse = false;
    const b = await startScriptBackend({ greeting: () => (refuse ? '554 5.3.2 not now\r\n' : '220 script.test ESMTP\r\n') });
    backends.push(b);
    const { pool: p } = pool([b.address], 'identity: none\nhealth_check: { interval: 30ms, timeout: 1s, rise: 3, fall: 2 }');
    try {
      await p.start();
      const s = p.servers[0]!;
      assert.equal(s.up, true);
      refuse = true;
      const before = b.conns.length;
      await until(() => s.up === false, 'the server to go down');
      assert.ok(b.conns.length - before >= 2, `down after ${b.conns.length - before} checks (fall 2)`);
      assert.match(s.reason, /greeting refused: 554/);
      refuse = false;
      const back = b.conns.length;
      await until(() => s.up === true, 'the server to come back');
      assert.ok(b.conns.length - back >= 3, `up after ${b.conns.length - back} checks (rise 3)`);
    } finally {
      p.stop();
    }
    const n = b.conns.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(b.conns.length <= n + 1, 'no checks after stop()');
  });

  it('identity xclient: a server that does not offer XCLIENT to Postern fails its check', async () => {
    const b = await startScriptBackend({ ehlo: ['PIPELINING'] });
    backends.push(b);
    const { pool: p } = pool([b.address], 'identity: xclient\nhealth_check: { interval: 1h, timeout: 1s }');
    try {
      await p.start();
      assert.equal(p.servers[0]!.up, false);
      assert.match(p.servers[0]!.reason, /XCLIENT not offered/);
    } finally {
      p.stop();
    }
  });
});
