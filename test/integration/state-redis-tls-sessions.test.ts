// TLS sessions in a real Redis, in-process: stored under the prefix with the session's
// lifetime as TTL, found with the lifetime left (Redis's clock), gone when it runs out;
// two host caches on one Redis find each other's sessions; while Redis is away a host's
// cache answers alone and gives its sessions to Redis when it returns.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RedisTlsSessions } from '../../src/state/redis-tls-sessions.js';
import { HostSessionCache } from '../../src/tls/host-session-cache.js';
import { redisAvailable, suiteRedis } from '../helpers/redis.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const logger = { info: () => undefined, warn: () => undefined };
const get = (c: HostSessionCache, id: Buffer) => new Promise<Buffer | null>((r) => c.get(id, r));
const put = (c: HostSessionCache, id: Buffer, d: Buffer) => new Promise<void>((r) => c.put(id, d, r));

describe('TLS sessions in Redis', { skip: !redisAvailable() && 'redis-server missing (apt-get install redis-server)' }, () => {
  const fx = suiteRedis(logger);
  const link = fx.link;
  let n = 0;

  it('keeps a session under the prefix with its lifetime as TTL, and gives it back with the lifetime left', async () => {
    const prefix = `s${++n}:`;
    const store = new RedisTlsSessions(await link(prefix));
    const data = Buffer.from([0x30, 0x82, 0, 0xff, 1, 2, 3]);
    await store.set('abcd', data, Date.now() + 400);
    const ttl = Number(await fx.redis.command('PTTL', `${prefix}tls:session:abcd`));
    assert.ok(ttl > 300 && ttl <= 400, `PTTL ${ttl}`);
    const got = await store.get('abcd');
    assert.deepEqual(got?.data, data, 'binary-safe');
    assert.ok(got!.expiresAt > Date.now() + 300 && got!.expiresAt <= Date.now() + 400);
    assert.equal(await store.get('ef01'), null);
    await fx.redis.command('SET', `${prefix}tls:session:ef01`, 'x');
    assert.equal(await store.get('ef01'), null, 'a key with no TTL is not one of ours');
    await store.set('dead', data, Date.now() - 1);
    assert.equal(await fx.redis.command('EXISTS', `${prefix}tls:session:dead`), '0', 'an expired session is not written');
    await sleep(450);
    assert.equal(await store.get('abcd'), null, 'Redis forgot it at its lifetime');
  });

  it("two hosts' caches find each other's sessions; with Redis away each answers alone, then writes back what it stored", async () => {
    const prefix = `h${++n}:`;
    const [la, lb] = [await link(prefix), await link(prefix)];
    const a = new HostSessionCache({ size: 100, ttlMs: 60_000, shared: new RedisTlsSessions(la) });
    const b = new HostSessionCache({ size: 100, ttlMs: 60_000, shared: new RedisTlsSessions(lb) });
    const id1 = Buffer.alloc(32, 1);
    await put(a, id1, Buffer.from('one'));
    assert.deepEqual(await get(b, id1), Buffer.from('one'));
    assert.equal(b.stats().sharedHits, 1);

    await fx.redis.kill();
    const deadline = Date.now() + 10_000;
    while (la.up || lb.up) {
      assert.ok(Date.now() < deadline, 'the links noticed the outage');
      await sleep(50);
    }
    const id2 = Buffer.alloc(32, 2);
    const t0 = Date.now();
    await put(a, id2, Buffer.from('two'));
    assert.deepEqual(await get(a, id2), Buffer.from('two'), "A's own cache answers");
    assert.equal(await get(b, id2), null, 'B cannot know it: a miss at once');
    assert.ok(Date.now() - t0 < 200, 'nothing waits for Redis while it is away');

    await fx.redis.restart();
    while (!la.up || !lb.up) {
      assert.ok(Date.now() < deadline + 10_000, 'the links came back');
      await sleep(50);
    }
    for (let i = 0; ; i++) {
      if ((await fx.redis.command('EXISTS', `${prefix}tls:session:${id2.toString('hex')}`)) === '1') break;
      assert.ok(i < 100, 'A wrote back the session it stored while Redis was away');
      await sleep(50);
    }
    assert.deepEqual(await get(b, id2), Buffer.from('two'));
  });
});
