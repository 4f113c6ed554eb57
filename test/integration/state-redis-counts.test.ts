// The Redis building blocks against a real redis-server, in-process: per-IP counts whose
// holder's death is accounted for (heartbeat TTL), atomic caps under concurrent admits,
// window counters shared by two instances with a per-host fallback, ticket keys under a
// lock, and the cluster-IPC window counter's two halves.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthFailureLimiter } from '../../src/auth/limiter.js';
import { ClusterWindowCounter, answerWindow, type WindowReply } from '../../src/server/cluster/windows.js';
import { RedisIpCounts } from '../../src/state/redis-ip-counts.js';
import { RedisTicketKeys } from '../../src/state/redis-ticket-keys.js';
import { RedisWindowCounter } from '../../src/state/redis-windows.js';
import { LocalWindowCounter } from '../../src/state/windows.js';
import { TicketKeyStore } from '../../src/tls/ticket-key-store.js';
import { redisAvailable, suiteRedis } from '../helpers/redis.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const limits = { connections: 2, rate: 1000, windowMs: 60_000 };

describe('Redis state primitives', { skip: !redisAvailable() && 'redis-server missing (apt-get install redis-server)' }, () => {
  const logs: { level: string; o: object; m?: string }[] = [];
  const logger = {
    info: (o: object, m?: string) => logs.push({ level: 'info', o, m }),
    warn: (o: object, m?: string) => logs.push({ level: 'warn', o, m }),
  };
  const fx = suiteRedis(logger);
  const link = fx.link;
  let n = 0;

  it('a dead instance\'s connections stop counting once its heartbeat runs out', async () => {
    const prefix = `ttl${++n}:`;
    const [la, lb] = [await link(prefix), await link(prefix)];
    const held = new Map<string, number>();
    const a = new RedisIpCounts(la, { held: () => held, heartbeatMs: 100, ttlMs: 400 });
    const b = new RedisIpCounts(lb, { held: () => new Map(), heartbeatMs: 100, ttlMs: 400 });
    assert.equal(await a.admit('192.0.2.1', limits), 'ok');
    assert.equal(await a.admit('192.0.2.1', limits), 'ok');
    assert.equal(await b.admit('192.0.2.1', limits), 'connections');
    // A is killed: no release, no goodbye, its heartbeat stops.
    await la.close();
    await sleep(200);
    assert.equal(await b.admit('192.0.2.1', limits), 'connections', 'still counted within the TTL');
    await sleep(400);
    assert.equal(await b.admit('192.0.2.1', limits), 'ok', 'counted no more after the TTL');
    await a.close();
    await b.close();
  });

  it('concurrent admissions from several instances never exceed the cap (one Lua script each)', async () => {
    const prefix = `race${++n}:`;
    const counts = await Promise.all([1, 2, 3, 4].map(async () => new RedisIpCounts(await link(prefix), { held: () => new Map() })));
    const verdicts = await Promise.all(Array.from({ length: 40 }, (_, i) => counts[i % 4]!.admit('198.51.100.9', { connections: 5, rate: 1000, windowMs: 60_000 })));
    assert.equal(verdicts.filter((v) => v === 'ok').length, 5);
    assert.equal(verdicts.filter((v) => v === 'connections').length, 35);
    for (const c of counts) await c.close();
  });

  it('the rate is one sliding window for all instances', async () => {
    const prefix = `rate${++n}:`;
    const [a, b] = [new RedisIpCounts(await link(prefix), { held: () => new Map() }), new RedisIpCounts(await link(prefix), { held: () => new Map() })];
    const rate = { connections: 100, rate: 3, windowMs: 500 };
    assert.equal(await a.admit('203.0.113.1', rate), 'ok');
    assert.equal(await b.admit('203.0.113.1', rate), 'ok');
    await a.release('203.0.113.1');
    assert.equal(await b.admit('203.0.113.1', rate), 'ok');
    assert.equal(await a.admit('203.0.113.1', rate), 'rate', 'the fourth within the window, whoever asks');
    await sleep(550);
    assert.equal(await a.admit('203.0.113.1', rate), 'ok', 'the window slid');
    await a.close();
    await b.close();
  });

  it('window counters: two instances count together; while Redis is away each counts alone, then together again', async () => {
    const prefix = `win${++n}:`;
    const [la, lb] = [await link(prefix), await link(prefix)];
    const a = new RedisWindowCounter(la);
    const b = new RedisWindowCounter(lb);
    assert.equal(await a.hit('ip:192.0.2.7', 60_000), 1);
    assert.equal(await b.hit('ip:192.0.2.7', 60_000), 2);
    assert.equal(await a.hit('ip:192.0.2.7', 60_000), 3);
    assert.equal(await b.count('ip:192.0.2.7', 60_000), 3);
    await sleep(20);
    assert.equal(await b.count('ip:192.0.2.7', 10), 0, 'a 10 ms window holds none of them now');
    const warnings = logs.filter((l) => l.level === 'warn').length;
    await fx.redis.kill();
    await sleep(200);
    assert.equal(la.up, false);
    // Per host: A saw two of the three, B one.
    assert.equal(await a.hit('ip:192.0.2.7', 60_000), 3);
    assert.equal(await b.hit('ip:192.0.2.7', 60_000), 2);
    assert.equal(await a.count('ip:192.0.2.7', 60_000), 3);
    assert.equal(logs.filter((l) => l.level === 'warn').length - warnings, fx.links.filter((l) => !l.up).length, 'one warning per link for the outage');
    await fx.redis.restart();
    assert.equal(await la.ready(5000), true);
    assert.equal(await lb.ready(5000), true);
    assert.equal(await a.hit('user:alice', 60_000), 1);
    assert.equal(await b.hit('user:alice', 60_000), 2, 'shared again');
    a.close();
    b.close();
  });

  it('auth known addresses through Redis: a login on one host exempts that address on another; the key lives known_address, with few events', async () => {
    const prefix = `known${++n}:`;
    const [la, lb] = [await link(prefix), await link(prefix)];
    const limits = { per_ip: null, per_user: { count: 3, window: 600_000 } };
    const a = new AuthFailureLimiter(new RedisWindowCounter(la), limits);
    const b = new AuthFailureLimiter(new RedisWindowCounter(lb), limits);
    for (let i = 0; i < 5; i++) await a.recordSuccess('192.0.2.10', 'Alice');
    for (let i = 1; i <= 4; i++) await b.recordFailure(`198.51.100.${i}`, 'alice');
    assert.equal(await b.check('192.0.2.10', 'alice'), null, 'known on the other host too');
    assert.equal((await b.check('198.51.100.9', 'alice'))?.limit, 'per_user');
    // Alice's typo at home on host A does not feed per_user (still 4 events).
    await a.recordFailure('192.0.2.10', 'alice');
    assert.equal(await fx.redis.command('ZCARD', `${prefix}win:auth-fail:user:alice`), '4');
    const known = `${prefix}win:auth-fail:known:192.0.2.10:alice`;
    assert.equal(await fx.redis.command('ZCARD', known), '1', 'five logins in a row: one event');
    const ttl = Number(await fx.redis.command('PTTL', known));
    assert.ok(ttl > 13 * 24 * 3600_000 && ttl <= 14 * 24 * 3600_000, `PTTL ${ttl}`);
    await la.close();
    await lb.close();
  });

  it('ticket keys: stores on two links agree on every key and rotate on one schedule; a lock keeps writers apart', async () => {
    const prefix = `keys${++n}:`;
    const [la, lb] = [await link(prefix), await link(prefix)];
    const a = await TicketKeyStore.open({ file: null, backing: new RedisTicketKeys(la), rotate: 2000, lifetime: 5000, logger });
    const b = await TicketKeyStore.open({ file: null, backing: new RedisTicketKeys(lb), rotate: 2000, lifetime: 5000, logger });
    const names = (s: TicketKeyStore) => s.ring.keys.map((k) => k.key.subarray(0, 16).toString('hex'));
    await a.sync();
    await b.sync();
    assert.deepEqual(names(a), names(b));
    assert.equal(a.current().key.equals(b.current().key), true);
    const firstKey = names(a)[0]!;
    await sleep(2100);
    // Each adopts what the other published (whichever came first).
    await a.sync();
    await b.sync();
    await a.sync();
    assert.deepEqual(names(a), names(b), 'the same set after a rotation');
    assert.notEqual(a.current().key.subarray(0, 16).toString('hex'), firstKey, 'rotated');
    assert.ok(names(b).includes(firstKey), 'the retired key still decrypts');
    // A writer holding the lock: others leave the set alone (and try again later).
    await fx.redis.command('SET', `${prefix}tls:ticket-keys:lock`, 'someone-else', 'PX', '5000');
    const backing = new RedisTicketKeys(la);
    assert.equal(await backing.update(() => []), null);
    await fx.redis.command('DEL', `${prefix}tls:ticket-keys:lock`);
    a.close();
    b.close();
  });

  it('ticket keys survive a Redis restart: the first store to notice writes its keys back', async () => {
    const prefix = `keys${++n}:`;
    const la = await link(prefix);
    const a = await TicketKeyStore.open({ file: null, backing: new RedisTicketKeys(la), rotate: 60_000, lifetime: 120_000, logger });
    const before = a.current().key.toString('hex');
    await fx.redis.kill();
    await sleep(200);
    await a.sync(); // Redis away: the keys in hand go on
    assert.equal(a.current().key.toString('hex'), before);
    await fx.redis.restart();
    assert.equal(await la.ready(5000), true);
    await a.sync();
    const lb = await link(prefix);
    const b = await TicketKeyStore.open({ file: null, backing: new RedisTicketKeys(lb), rotate: 60_000, lifetime: 120_000, logger });
    assert.equal(b.current().key.toString('hex'), before, 'an instance starting now adopts the same key');
    a.close();
    b.close();
  });
});

describe('ClusterWindowCounter', () => {
  it('asks the primary, which answers from its counter; answers are matched by id', async () => {
    const primary = new LocalWindowCounter();
    let onReply: (m: WindowReply) => void = () => undefined;
    const worker = new ClusterWindowCounter({
      // Replies come back out of order: the primary's counter may answer asynchronously.
      send: (m) => setTimeout(() => answerWindow(primary, m, (r) => onReply(r)), m.op === 'count' ? 20 : 1),
      onReply: (h) => (onReply = h),
    });
    let onReply2: (m: WindowReply) => void = () => undefined;
    const other = new ClusterWindowCounter({ send: (m) => answerWindow(primary, m, (r) => onReply2(r)), onReply: (h) => (onReply2 = h) });
    assert.equal(await worker.hit('ip:1', 60_000), 1);
    assert.equal(await other.hit('ip:1', 60_000), 2, 'a second worker counts into the same window');
    const [c, h] = await Promise.all([worker.count('ip:1', 60_000), worker.hit('ip:1', 60_000)]);
    assert.equal(h, 3);
    assert.equal(c, 3, 'the slower count answered after the hit');
    worker.close();
    other.close();
    primary.close();
  });
});
