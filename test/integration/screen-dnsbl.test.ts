// The DNSBL client against real DNS servers on loopback: Debian's rbldnsd for listings
// (IPv4, IPv6, weights, DNSWL, filters, a zone that lists 127.0.0.1), and a scripted UDP
// server for what rbldnsd will not do on demand (timeouts, SERVFAIL, 127.255.255.x,
// chosen TTLs). The cache is watched through the scripted server's query counts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DnsblSiteError } from '../../src/config/dnsbl-site.js';
import { Dnsbl, DnsblError, type DnsblHooks, type DnsblOptions, type DnsblQueryResult } from '../../src/screen/dnsbl.js';
import { startScriptedDns, type ScriptedDns } from '../helpers/dns-server.js';
import { rbldnsdAvailable, startRbldnsd, type Rbldnsd } from '../helpers/rbldnsd.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Hooks that record what they are told. */
function recorder() {
  const queries: { zone: string; result: DnsblQueryResult; seconds: number }[] = [];
  const warnings: { msg: string; detail: Record<string, unknown> }[] = [];
  const hooks: DnsblHooks = {
    query: (zone, result, seconds) => void queries.push({ zone, result, seconds }),
    warn: (msg, detail) => void warnings.push({ msg, detail: detail as Record<string, unknown> }),
  };
  return { hooks, queries, warnings };
}

describe('Dnsbl against rbldnsd', { skip: !rbldnsdAvailable() && 'rbldnsd missing (apt-get install rbldnsd)' }, () => {
  let rbl: Rbldnsd;
  const open: Dnsbl[] = [];
  const make = (opts: Partial<DnsblOptions>, hooks?: DnsblHooks): Dnsbl => {
    const d = new Dnsbl({ sites: [], resolvers: [rbl.server], timeoutMs: 3000, minTtlMs: 60_000, maxTtlMs: 3_600_000, ...opts }, hooks);
    open.push(d);
    return d;
  };
  const SITES = ['bl.test=127.0.0.[2..11]*3', 'bl.test=127.0.0.4', 'wl.test=127.0.[0..255].[1;2;3]*-2'];

  before(async () => {
    rbl = await startRbldnsd([
      {
        name: 'bl.test',
        type: 'ip4set',
        lines: [':127.0.0.2:listed', '127.0.0.2', '192.0.2.10 :127.0.0.4:', '192.0.2.30 :127.0.0.12:', '198.51.100.0/24 :127.0.0.10:'],
      },
      { name: 'bl.test', type: 'ip6trie', lines: [':127.0.0.3:', '2001:db8:1::/48'] },
      { name: 'wl.test', type: 'ip4set', lines: [':127.0.10.2:', '127.0.0.2', '192.0.2.20', '192.0.2.10 :127.0.10.3:'] },
      // Answers for everything, the test entry 127.0.0.1 too: a broken (or hijacked) zone.
      { name: 'bad.test', type: 'ip4set', lines: [':127.0.0.2:', '127.0.0.0/8', '203.0.113.0/24'] },
    ]);
  });
  after(async () => {
    for (const d of open) d.close();
    await rbl?.stop();
  });

  it('scores an IPv4 listing with every matching site, DNSWL weight included', async () => {
    const rec = recorder();
    const d = make({ sites: SITES }, rec.hooks);
    const r = await d.lookup('192.0.2.10');
    assert.equal(r.score, 3 + 1 - 2);
    assert.deepEqual(r.hits, [
      { zone: 'bl.test', weight: 3, answer: '127.0.0.4' },
      { zone: 'bl.test', weight: 1, answer: '127.0.0.4' },
      { zone: 'wl.test', weight: -2, answer: '127.0.10.3' },
    ]);
    assert.deepEqual(r.errors, []);
    assert.equal(r.cached, false);
    assert.deepEqual(
      rec.queries.map((q) => [q.zone, q.result]).sort(),
      [
        ['bl.test', 'listed'],
        ['wl.test', 'listed'],
      ],
      'one query per zone, not per site',
    );
    assert.ok(rec.queries.every((q) => q.seconds >= 0 && q.seconds < 3));
  });

  it('applies filters: an answer outside the filter counts nothing', async () => {
    const d = make({ sites: SITES });
    const outside = await d.lookup('192.0.2.30');
    assert.equal(outside.score, 0);
    assert.deepEqual(outside.hits, []);
    assert.deepEqual(outside.errors, []);
    const range = await d.lookup('198.51.100.77');
    assert.equal(range.score, 3);
    assert.deepEqual(range.hits, [{ zone: 'bl.test', weight: 3, answer: '127.0.0.10' }]);
  });

  it('asks IPv6 clients in nibble form, and IPv4-mapped ones as IPv4', async () => {
    const d = make({ sites: SITES });
    const v6 = await d.lookup('2001:db8:1:2::25');
    assert.equal(v6.score, 3);
    assert.deepEqual(v6.hits, [{ zone: 'bl.test', weight: 3, answer: '127.0.0.3' }]);
    assert.equal((await d.lookup('2001:db8:2::1')).score, 0);
    const mapped = await d.lookup('::ffff:192.0.2.10');
    assert.equal(mapped.score, 2);
  });

  it('gives an allowlisted client a negative score', async () => {
    const d = make({ sites: SITES });
    const r = await d.lookup('192.0.2.20');
    assert.equal(r.score, -2);
    assert.deepEqual(r.hits, [{ zone: 'wl.test', weight: -2, answer: '127.0.10.2' }]);
  });

  it('answers a second lookup from the cache, with no query', async () => {
    const rec = recorder();
    const d = make({ sites: SITES }, rec.hooks);
    const first = await d.lookup('203.0.113.5');
    assert.equal(first.score, 0);
    assert.equal(first.cached, false);
    assert.equal(rec.queries.length, 2);
    const second = await d.lookup('203.0.113.5');
    assert.equal(second.cached, true);
    assert.equal(rec.queries.length, 2, 'no query for a cached name');
    const listed = await d.lookup('192.0.2.10');
    const again = await d.lookup('192.0.2.10');
    assert.equal(again.cached, true);
    assert.deepEqual(again.hits, listed.hits);
  });

  it('skips a zone that lists 127.0.0.1 after a check, with a warning', async () => {
    const rec = recorder();
    const d = make({ sites: [...SITES, 'bad.test*5'] }, rec.hooks);
    assert.equal((await d.lookup('203.0.113.9')).score, 5, 'before the check the broken zone lists everybody');
    const checks = await d.checkZones();
    const byZone = Object.fromEntries(checks.map((c) => [c.zone, c]));
    assert.deepEqual(byZone['bl.test'], { zone: 'bl.test', ok: true });
    assert.deepEqual(byZone['wl.test'], { zone: 'wl.test', ok: true });
    assert.equal(byZone['bad.test']!.ok, false);
    assert.match(byZone['bad.test']!.why!, /127\.0\.0\.1/);
    assert.deepEqual(d.skippedZones, ['bad.test']);
    const w = rec.warnings.find((x) => x.detail['zone'] === 'bad.test');
    assert.ok(w, `a warning names the zone: ${JSON.stringify(rec.warnings)}`);
    const before = rec.queries.length;
    const r = await d.lookup('203.0.113.10');
    assert.equal(r.score, 0);
    assert.deepEqual(r.skipped, ['bad.test']);
    assert.ok(!rec.queries.slice(before).some((q) => q.zone === 'bad.test'), 'the skipped zone is not asked');
  });
});

describe('Dnsbl against a scripted DNS server', () => {
  let dns: ScriptedDns;
  const open: Dnsbl[] = [];
  const make = (opts: Partial<DnsblOptions>, hooks?: DnsblHooks): Dnsbl => {
    const d = new Dnsbl({ sites: [], resolvers: [dns.server], timeoutMs: 2000, minTtlMs: 60_000, maxTtlMs: 3_600_000, ...opts }, hooks);
    open.push(d);
    return d;
  };

  before(async () => {
    dns = await startScriptedDns({}, { soa: { 'neg.test': 2 } });
  });
  after(async () => {
    for (const d of open) d.close();
    await dns?.stop();
  });

  it('gives up on a silent zone within timeoutMs, keeping the other zones\' answers', async () => {
    dns.set('1.2.0.192.slow.test', 'drop');
    dns.set('1.2.0.192.fast.test', { a: [{ address: '127.0.0.2', ttl: 60 }] });
    const rec = recorder();
    const d = make({ sites: ['slow.test*5', 'fast.test*2'], timeoutMs: 500 }, rec.hooks);
    const t0 = Date.now();
    const r = await d.lookup('192.0.2.1');
    const took = Date.now() - t0;
    assert.ok(took >= 450 && took < 2500, `took ${took} ms for a 500 ms timeout`);
    assert.equal(r.score, 2);
    assert.deepEqual(r.errors.map((e) => e.zone), ['slow.test']);
    assert.match(r.errors[0]!.error, /timeout/);
    assert.deepEqual(rec.queries.find((q) => q.zone === 'slow.test')?.result, 'timeout');
    assert.ok(dns.queries('1.2.0.192.slow.test') <= 2, 'tries: 1, and at most once more on a fresh channel');
  });

  it('counts SERVFAIL and REFUSED as errors, and does not cache them', async () => {
    dns.set('2.2.0.192.sf.test', 'servfail');
    dns.set('2.2.0.192.rf.test', 'refused');
    const rec = recorder();
    const d = make({ sites: ['sf.test', 'rf.test'] }, rec.hooks);
    const r = await d.lookup('192.0.2.2');
    assert.equal(r.score, 0);
    assert.deepEqual(
      r.errors.map((e) => [e.zone, e.error]),
      [
        ['sf.test', 'SERVFAIL'],
        ['rf.test', 'REFUSED'],
      ],
    );
    assert.deepEqual(rec.queries.map((q) => q.result), ['error', 'error']);
    const again = await d.lookup('192.0.2.2');
    assert.equal(again.cached, false);
    assert.equal(dns.queries('2.2.0.192.sf.test'), 2, 'an error is asked again');
  });

  it('takes 127.255.255.254 for an error with a warning, never a listing', async () => {
    dns.set('3.2.0.192.quota.test', { a: [{ address: '127.0.0.2', ttl: 60 }, { address: '127.255.255.254', ttl: 60 }] });
    const rec = recorder();
    const d = make({ sites: ['quota.test*4'] }, rec.hooks);
    const r = await d.lookup('192.0.2.3');
    assert.equal(r.score, 0);
    assert.deepEqual(r.hits, []);
    assert.deepEqual(r.errors.map((e) => e.zone), ['quota.test']);
    assert.match(r.errors[0]!.error, /127\.255\.255\.254/);
    assert.equal(rec.queries[0]?.result, 'error');
    assert.equal(rec.warnings.length, 1);
    assert.equal(rec.warnings[0]!.detail['zone'], 'quota.test');
    await d.lookup('192.0.2.3');
    assert.equal(dns.queries('3.2.0.192.quota.test'), 2, 'an error code is not cached');
    assert.equal(rec.warnings.length, 1, 'a repeat within the minute is held back');
  });

  it('skips a zone that answers for 127.0.0.1, and asks it no more', async () => {
    dns.set('1.0.0.127.all.test', { a: [{ address: '127.0.0.2', ttl: 60 }] });
    dns.set('2.0.0.127.all.test', { a: [{ address: '127.0.0.2', ttl: 60 }] });
    dns.set('2.0.0.127.good.test', { a: [{ address: '127.0.0.2', ttl: 60 }] });
    const rec = recorder();
    const d = make({ sites: ['all.test*9', 'good.test'] }, rec.hooks);
    const checks = await d.checkZones();
    assert.deepEqual(
      checks.map((c) => [c.zone, c.ok]),
      [
        ['all.test', false],
        ['good.test', true],
      ],
    );
    assert.ok(rec.warnings.some((w) => w.detail['zone'] === 'all.test' && /skipped/.test(w.msg)));
    const r = await d.lookup('192.0.2.4');
    assert.equal(r.score, 0);
    assert.equal(dns.queries('4.2.0.192.all.test'), 0);
    assert.equal(dns.queries('4.2.0.192.good.test'), 1);
    // Repaired: the next check takes it back.
    dns.set('1.0.0.127.all.test', 'nxdomain');
    assert.deepEqual((await d.checkZones()).map((c) => c.ok), [true, true]);
    assert.deepEqual(d.skippedZones, []);
  });

  it('caches an answer for at least minTtlMs, whatever its TTL', async () => {
    dns.set('5.2.0.192.min.test', { a: [{ address: '127.0.0.2', ttl: 0 }] });
    const d = make({ sites: ['min.test'], minTtlMs: 600, maxTtlMs: 5000 });
    assert.equal((await d.lookup('192.0.2.5')).cached, false);
    await sleep(150);
    const mid = await d.lookup('192.0.2.5');
    assert.equal(mid.cached, true, 'a TTL of 0 is held for min_ttl');
    assert.equal(mid.score, 1);
    assert.equal(dns.queries('5.2.0.192.min.test'), 1);
    await sleep(700);
    assert.equal((await d.lookup('192.0.2.5')).cached, false, 'asked again once min_ttl ran out');
    assert.equal(dns.queries('5.2.0.192.min.test'), 2);
  });

  it('caches an answer for at most maxTtlMs, and for its own TTL in between', async () => {
    dns.set('6.2.0.192.max.test', { a: [{ address: '127.0.0.2', ttl: 3600 }] });
    dns.set('7.2.0.192.max.test', { a: [{ address: '127.0.0.2', ttl: 2 }] });
    const d = make({ sites: ['max.test'], minTtlMs: 100, maxTtlMs: 1000 });
    const mid = make({ sites: ['max.test'], minTtlMs: 100, maxTtlMs: 10_000 });
    await d.lookup('192.0.2.6');
    await mid.lookup('192.0.2.7');
    await sleep(250);
    assert.equal((await d.lookup('192.0.2.6')).cached, true);
    assert.equal((await mid.lookup('192.0.2.7')).cached, true);
    await sleep(900);
    assert.equal((await d.lookup('192.0.2.6')).cached, false, 'a TTL of an hour is held for max_ttl only');
    assert.equal(dns.queries('6.2.0.192.max.test'), 2);
    assert.equal((await mid.lookup('192.0.2.7')).cached, true, 'a TTL of 2 s between the bounds is kept');
    await sleep(1100);
    assert.equal((await mid.lookup('192.0.2.7')).cached, false, 'and runs out after its 2 s');
    assert.equal(dns.queries('7.2.0.192.max.test'), 2);
  });

  it('caches "not listed" for min_ttl, or for the SOA minimum once a check has read it', async () => {
    const d = make({ sites: ['neg.test'], minTtlMs: 200, maxTtlMs: 10_000 });
    const n = (last: number) => dns.queries(`${last}.2.0.192.neg.test`);
    await d.lookup('192.0.2.8');
    assert.equal((await d.lookup('192.0.2.8')).cached, true, 'NXDOMAIN is cached');
    await sleep(400);
    await d.lookup('192.0.2.8');
    assert.equal(n(8), 2, 'for min_ttl before any check');
    await d.checkZones(); // reads the SOA: minimum 2 s
    await d.lookup('192.0.2.9');
    await sleep(400);
    assert.equal((await d.lookup('192.0.2.9')).cached, true, 'held for the SOA minimum (2 s), past min_ttl');
    assert.equal(n(9), 1);
  });

  it('lets concurrent lookups of one address share one query', async () => {
    dns.set('10.2.0.192.share.test', { a: [{ address: '127.0.0.3', ttl: 60 }] });
    const d = make({ sites: ['share.test*2'] });
    const all = await Promise.all(Array.from({ length: 5 }, () => d.lookup('192.0.2.10')));
    assert.ok(all.every((r) => r.score === 2));
    assert.equal(dns.queries('10.2.0.192.share.test'), 1);
  });

  it('resolves at once on abort with what is known; the query goes on and fills the cache', async () => {
    dns.set('11.2.0.192.hang.test', { a: [{ address: '127.0.0.2', ttl: 60 }], delayMs: 700 });
    dns.set('11.2.0.192.quick.test', { a: [{ address: '127.0.0.2', ttl: 60 }] });
    const rec = recorder();
    const d = make({ sites: ['hang.test*5', 'quick.test*2'], timeoutMs: 5000 }, rec.hooks);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t0 = Date.now();
    const r = await d.lookup('192.0.2.11', ac.signal);
    const took = Date.now() - t0;
    assert.ok(took < 650, `resolved ${took} ms after start, abort at 200 ms, answer at 700 ms`);
    assert.equal(r.score, 2);
    assert.deepEqual(r.errors, [{ zone: 'hang.test', error: 'aborted' }]);
    const pre = await d.lookup('192.0.2.11', AbortSignal.abort());
    assert.equal(pre.score, 2, 'already aborted: the cache still answers');
    assert.deepEqual(pre.errors, [{ zone: 'hang.test', error: 'aborted' }]);
    const joined = await d.lookup('192.0.2.11');
    assert.equal(joined.score, 7, 'a later lookup joins the query still in flight');
    assert.equal(dns.queries('11.2.0.192.hang.test'), 1, 'one query for all three lookups');
    assert.equal((await d.lookup('192.0.2.11')).cached, true);
    assert.equal(rec.queries.filter((q) => q.zone === 'hang.test').length, 1);
  });

  it('waits the whole timeoutMs for a slow list even after many fast answers (c-ares shortens its timeout)', async () => {
    dns.set('12.2.0.192.lag.test', { a: [{ address: '127.0.0.2', ttl: 60 }], delayMs: 1300 });
    const d = make({ sites: ['lag.test'], timeoutMs: 4000 });
    // 300 fast NXDOMAINs teach the channel that this server answers in well under 1 ms.
    for (let i = 0; i < 300; i++) await d.lookup(`198.18.${i >> 8}.${i & 255}`);
    const t0 = Date.now();
    const r = await d.lookup('192.0.2.12');
    assert.deepEqual(r.errors, [], `answered after ${Date.now() - t0} ms`);
    assert.equal(r.score, 1);
  });

  it('never rejects: not on an address that is not one, nor when a hook throws', async () => {
    const d = make({ sites: ['any.test'] });
    const r = await d.lookup('not-an-address');
    assert.equal(r.score, 0);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!.error, /not an IP address/);
    dns.set('13.2.0.192.any.test', { a: [{ address: '127.255.255.254', ttl: 60 }] });
    dns.set('14.2.0.192.any.test', { a: [{ address: '127.0.0.2', ttl: 60 }] });
    const throwing = make(
      { sites: ['any.test'] },
      {
        query: () => {
          throw new Error('hook bug');
        },
        warn: () => {
          throw new Error('hook bug');
        },
      },
    );
    assert.equal((await throwing.lookup('192.0.2.13')).errors.length, 1);
    assert.equal((await throwing.lookup('192.0.2.14')).score, 1);
    assert.equal((await throwing.lookup('192.0.2.14')).cached, true, 'the answer was cached all the same');
  });

  it('refuses bad sites and resolvers when built, and answers "closed" after close()', async () => {
    assert.throws(() => make({ sites: ['ok.test', 'bad.test=127.0.0'] }), (err: unknown) => err instanceof DnsblSiteError && err.site === 'bad.test=127.0.0');
    assert.throws(() => make({ resolvers: ['not a host'] }), (err: unknown) => err instanceof DnsblError && err.code === 'DNSBL_RESOLVER');
    assert.throws(() => make({ timeoutMs: 0 }), (err: unknown) => err instanceof DnsblError && err.code === 'DNSBL_OPTIONS');
    assert.throws(() => make({ minTtlMs: 2000, maxTtlMs: 1000 }), (err: unknown) => err instanceof DnsblError && err.code === 'DNSBL_OPTIONS');
    assert.throws(() => make({ cacheSize: 0 }), (err: unknown) => err instanceof DnsblError && err.code === 'DNSBL_OPTIONS');
    const d = make({ sites: ['any.test'] });
    d.close();
    assert.deepEqual((await d.lookup('192.0.2.12')).errors, [{ zone: 'any.test', error: 'closed' }]);
  });

  it('checks periodically once started, and stops on close()', async () => {
    dns.set('1.0.0.127.flip.test', 'nxdomain');
    const d = make({ sites: ['flip.test'] });
    d.startPeriodicCheck(150);
    const deadline = Date.now() + 3000;
    while (dns.queries('1.0.0.127.flip.test') < 2 && Date.now() < deadline) await sleep(50);
    assert.ok(dns.queries('1.0.0.127.flip.test') >= 2, 'the start-up check and one periodic check');
    dns.set('1.0.0.127.flip.test', { a: [{ address: '127.0.0.2', ttl: 60 }] });
    const until = Date.now() + 3000;
    while (d.skippedZones.length === 0 && Date.now() < until) await sleep(50);
    assert.deepEqual(d.skippedZones, ['flip.test'], 'a zone that breaks later is found by the periodic check');
    d.close();
    await sleep(100);
    const seen = dns.queries('1.0.0.127.flip.test');
    await sleep(400);
    assert.equal(dns.queries('1.0.0.127.flip.test'), seen, 'no check after close()');
  });
});
