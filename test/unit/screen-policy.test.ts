// Screening's pure parts: the access list (first match wins), what a DNSBL score means,
// which action is the stronger, the reply texts; and the pass cache and auto-ban over a
// LocalWindowCounter with the time passed in.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessList } from '../../src/screen/access.js';
import { ScreenCache } from '../../src/screen/cache.js';
import { dnsblVerdict, dropReply, enforceRefusal, reason, stronger } from '../../src/screen/policy.js';
import { LocalWindowCounter } from '../../src/state/windows.js';

describe('screen.access', () => {
  const list = new AccessList([
    { cidr: '192.0.2.7', action: 'reject' },
    { cidr: '192.0.2.0/24', action: 'permit' },
    { cidr: '2001:db8::/32', action: 'reject' },
  ]);

  it('first match wins', () => {
    assert.equal(list.match('192.0.2.7'), 'reject');
    assert.equal(list.match('192.0.2.8'), 'permit');
  });

  it('IPv4-mapped IPv6 as sockets report it matches the IPv4 entries; IPv6 its own', () => {
    assert.equal(list.match('::ffff:192.0.2.9'), 'permit');
    assert.equal(list.match('2001:db8::1'), 'reject');
  });

  it('no match, or not an address: null', () => {
    assert.equal(list.match('198.51.100.1'), null);
    assert.equal(list.match('not-an-ip'), null);
    assert.equal(new AccessList([]).match('192.0.2.1'), null);
  });
});

describe('screening verdicts', () => {
  it('stronger: drop > enforce > ignore', () => {
    assert.equal(stronger('ignore', 'enforce'), 'enforce');
    assert.equal(stronger('drop', 'enforce'), 'drop');
    assert.equal(stronger('enforce', 'ignore'), 'enforce');
    assert.equal(stronger('ignore', 'ignore'), 'ignore');
  });

  it('a score at or above threshold is listed; allowlisting only with a negative allowlist_threshold', () => {
    assert.equal(dnsblVerdict(3, { threshold: 3, allowlist_threshold: 0 }), 'listed');
    assert.equal(dnsblVerdict(2, { threshold: 3, allowlist_threshold: 0 }), 'neutral');
    // postconf(5): 0 keeps it off, or every unlisted client (score 0) would skip the tests.
    assert.equal(dnsblVerdict(0, { threshold: 1, allowlist_threshold: 0 }), 'neutral');
    assert.equal(dnsblVerdict(-2, { threshold: 1, allowlist_threshold: -1 }), 'allowlisted');
    assert.equal(dnsblVerdict(-1, { threshold: 1, allowlist_threshold: -1 }), 'allowlisted');
    assert.equal(dnsblVerdict(0, { threshold: 1, allowlist_threshold: -1 }), 'neutral');
  });

  it('the reason names the listing zones (reply_map hides their names), else the tests', () => {
    const hits = [
      { zone: 'Zen.Spamhaus.org', weight: 3, answer: '127.0.0.2' },
      { zone: 'list.dnswl.org', weight: -2, answer: '127.0.9.1' },
      { zone: 'b.example', weight: 1, answer: '127.0.0.2' },
    ];
    assert.equal(reason(['dnsbl'], hits, { 'zen.spamhaus.org': 'zen' }), 'blocked using zen, b.example');
    assert.equal(reason(['pregreet'], hits, {}), 'protocol error (pregreet)');
    assert.equal(reason([], [], {}), 'blocked');
  });

  it('replies: 521 5.7.1 to drop, 550 5.7.1 to each RCPT; text cleaned to one line', () => {
    assert.equal(dropReply('mx.test', '192.0.2.1', 'blocked using zen'), '521 5.7.1 mx.test Service unavailable; client [192.0.2.1] blocked using zen\r\n');
    const e = enforceRefusal('192.0.2.1', 'bad\r\nthing');
    assert.equal(e.smtpCode, 550);
    assert.equal(e.reply, '550 5.7.1 Service unavailable; client [192.0.2.1] bad??thing\r\n');
  });
});

describe('screening cache and auto-ban', () => {
  function clock(start = 1_000_000) {
    let t = start;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  }

  it('a pass is remembered per kind for pass_ttl, per address; 0 turns the cache off', async () => {
    const c = clock();
    const w = new LocalWindowCounter(c.now);
    const cache = new ScreenCache(w);
    assert.equal(await cache.passed('192.0.2.1', 'greet', 1000), false);
    await cache.remember('192.0.2.1', 'greet', 1000);
    assert.equal(await cache.passed('192.0.2.1', 'greet', 1000), true);
    assert.equal(await cache.passed('192.0.2.1', 'deep', 1000), false, 'per kind');
    assert.equal(await cache.passed('192.0.2.2', 'greet', 1000), false, 'per address');
    c.advance(1001);
    assert.equal(await cache.passed('192.0.2.1', 'greet', 1000), false, 'expired');
    await cache.remember('192.0.2.3', 'greet', 0);
    assert.equal(await cache.passed('192.0.2.3', 'greet', 0), false);
    w.close();
  });

  it('N failures within the window ban the address for `ban`, then it is free again', async () => {
    const c = clock();
    const w = new LocalWindowCounter(c.now);
    const cache = new ScreenCache(w);
    const failures = { count: 3, window: 10_000 };
    assert.equal(await cache.failed('192.0.2.9', failures, 5000), false);
    c.advance(1000);
    assert.equal(await cache.failed('192.0.2.9', failures, 5000), false);
    assert.equal(await cache.banned('192.0.2.9', 5000), false);
    c.advance(1000);
    assert.equal(await cache.failed('192.0.2.9', failures, 5000), true);
    assert.equal(await cache.banned('192.0.2.9', 5000), true);
    assert.equal(await cache.banned('192.0.2.10', 5000), false);
    c.advance(5001);
    assert.equal(await cache.banned('192.0.2.9', 5000), false);
    w.close();
  });

  it('failures spread wider than the window do not ban', async () => {
    const c = clock();
    const w = new LocalWindowCounter(c.now);
    const cache = new ScreenCache(w);
    const failures = { count: 2, window: 1000 };
    assert.equal(await cache.failed('192.0.2.20', failures, 5000), false);
    c.advance(1500);
    assert.equal(await cache.failed('192.0.2.20', failures, 5000), false);
    assert.equal(await cache.banned('192.0.2.20', 5000), false);
    w.close();
  });
});

describe('postern report and status: screening', () => {
  it('the report counts verdicts, failed tests, zone hits and refused clients; the status header counts sessions in screening', async () => {
    const { ReportAggregator } = await import('../../src/tools/report-aggregate.js');
    const { renderReport } = await import('../../src/tools/report-text.js');
    const { renderStatus } = await import('../../src/tools/status-client.js');
    const agg = new ReportAggregator();
    const session = (address: string, screen: unknown) =>
      JSON.stringify({ level: 'info', time: '2026-12-07T04:00:00.000Z', event: 'session', conn: 'c', client: { address, port: 1 }, listener: 'mx', proxy: null, tls: null, helo: null, auth: null, backend: null, transactions: 0, rcpts: 0, bytes_in: 0, bytes_out: 0, duration_ms: 5, close: 'quit', anomalies: [], limit_rejections: {}, screen });
    agg.line(session('192.0.2.1', { result: 'enforce', score: 3, dnsbl: [{ zone: 'zen.test', weight: 3, answer: '127.0.0.2' }], tests: ['dnsbl'], ms: 600 }));
    agg.line(session('192.0.2.1', { result: 'drop', score: null, dnsbl: [], tests: ['pregreet'], ms: 600 }));
    agg.line(session('192.0.2.2', { result: 'cached', score: null, dnsbl: [], tests: [], ms: 1 }));
    agg.line(session('192.0.2.3', null));
    const r = agg.result({ top: 5 });
    assert.equal(r.screening.sessions, 3);
    assert.deepEqual(r.screening.results, { enforce: 1, drop: 1, cached: 1 });
    assert.deepEqual(r.screening.tests, { dnsbl: 1, pregreet: 1 });
    assert.deepEqual(r.screening.zones, { 'zen.test': { hits: 1, hit_rate: 0.3333 } });
    assert.deepEqual(r.screening.top_refused_clients.items.map((i) => [i.name, i.count]), [['192.0.2.1', 2]]);
    const text = renderReport(r);
    assert.match(text, /Screening\n-+\n  3 screened sessions/);
    assert.match(text, /zen\.test\s+1\s+33\.3%/);
    const status = renderStatus({ sessions: [{ conn: 'a', client: { address: '192.0.2.1', port: 1 }, listener: 'mx', state: 'screening', helo: null, tls: null, backend: null, age_ms: 10, bytes_in: 0, bytes_out: 0 }], backends: [] } as never);
    assert.match(status, /1 session \(1 in screening\)/);
  });
});

describe('screen config', () => {
  it('a bad DNSBL site fails the config at load, named with its index; a good one is kept as written', async () => {
    const { parseConfig } = await import('../../src/config/index.js');
    const base = (sites: string) => `listeners: [ { name: mx, listen: 127.0.0.1:0, screen: on } ]
backends: { servers: [ { address: 127.0.0.1:25 } ] }
screen: { dnsbl: { sites: ${sites} } }
`;
    assert.deepEqual(parseConfig(base('["zen.spamhaus.org=127.0.0.[2..11]*3"]')).screen.dnsbl.sites, ['zen.spamhaus.org=127.0.0.[2..11]*3']);
    assert.throws(() => parseConfig(base('["ok.test", "bad.test=127.0.0.[9..2]"]')), /screen\.dnsbl\.sites\[1\]|sites\.1|\[1\]/);
    assert.throws(() => parseConfig(base('["x.test*heavy"]')), /weight/);
  });

  it('listeners[].screen takes on/off (and booleans); actions are ignore, enforce or drop', async () => {
    const { parseConfig } = await import('../../src/config/index.js');
    const c = parseConfig(`listeners: [ { name: a, listen: 127.0.0.1:0, screen: true }, { name: b, listen: 127.0.0.1:0 } ]
backends: { servers: [ { address: 127.0.0.1:25 } ] }
screen: { pregreet_action: drop, autoban: { failures: 5/1h, ban: 1d } }
`);
    assert.deepEqual(c.listeners.map((l) => l.screen), ['on', 'off']);
    assert.deepEqual(c.screen.autoban, { failures: { count: 5, window: 3_600_000 }, ban: 86_400_000 });
    assert.throws(() => parseConfig(`listeners: [ { name: a, listen: 127.0.0.1:0 } ]
backends: { servers: [ { address: 127.0.0.1:25 } ] }
screen: { pregreet_action: reject }
`), /one of ignore, enforce, drop/);
  });
});
