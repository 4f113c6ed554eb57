// backend/greeted-pool.ts: ready backend connections (connected, 220 read, EHLO sent),
// against a scripted SMTP server on loopback that records what each connection saw.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { parseHostPort } from '../../src/config/index.js';
import { GreetedPool, greet, type GreetedPoolOptions } from '../../src/backend/greeted-pool.js';
import { BackendError } from '../../src/backend/errors.js';
import { startScriptBackend, until, type ScriptBackend, type ScriptOptions } from '../helpers/script-backend.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const OPTS: GreetedPoolOptions = {
  idle: 2,
  maxAge: 60_000,
  keepalive: 60_000,
  hostname: 'postern.test',
  connectTimeout: 1000,
  replyTimeout: 1000,
};

describe('GreetedPool', () => {
  const backends: ScriptBackend[] = [];
  const pools: GreetedPool[] = [];
  after(async () => {
    for (const p of pools) p.close();
    for (const b of backends) await b.close();
  });

  async function setup(
    opts: Partial<GreetedPoolOptions> = {},
    script: ScriptOptions = {},
    usable: () => boolean = () => true,
  ): Promise<{ b: ScriptBackend; pool: GreetedPool }> {
    const b = await startScriptBackend(script);
    backends.push(b);
    const pool = new GreetedPool(parseHostPort(b.address), { ...OPTS, ...opts }, usable);
    pools.push(pool);
    return { b, pool };
  }

  it('greet(): connect, 220, EHLO as us; capabilities from the EHLO', async () => {
    const b = await startScriptBackend({ ehlo: ['PIPELINING', 'SIZE 1234'] });
    backends.push(b);
    const g = await greet(parseHostPort(b.address), OPTS);
    assert.deepEqual(b.conns[0]!.commands, ['EHLO postern.test']);
    assert.deepEqual(g.caps.get('SIZE'), ['1234']);
    assert.equal(g.parked, null);
    assert.equal(g.conn.helo, 'postern.test');
    g.conn.quit();
  });

  it('greet(): a refused greeting rejects and leaves no connection open', async () => {
    const b = await startScriptBackend({ greeting: () => '554 5.3.2 go away\r\n' });
    backends.push(b);
    await assert.rejects(greet(parseHostPort(b.address), OPTS), (err: Error) => err instanceof BackendError && /greeting refused: 554/.test(err.message));
    await until(() => b.conns[0]?.closed === true, 'the refused connection to close');
  });

  it('fills to `idle` ready connections, each greeted as us', async () => {
    const { b, pool } = await setup();
    await until(() => pool.size === 2, 'two ready connections');
    assert.equal(b.conns.length, 2);
    for (const c of b.conns) assert.deepEqual(c.commands, ['EHLO postern.test']);
  });

  it('take() hands out a ready connection and refills in the background', async () => {
    const { b, pool } = await setup();
    await until(() => pool.size === 2, 'filled');
    const g = pool.take();
    assert.ok(g);
    assert.ok(g.conn.idle);
    assert.equal(pool.size, 1);
    await until(() => pool.size === 2, 'refilled');
    assert.equal(b.conns.length, 3);
    g.conn.quit();
  });

  it('a ready connection the backend closes (its idle timeout) leaves the pool; take() then refills', async () => {
    const { b, pool } = await setup({ idle: 1 });
    await until(() => pool.size === 1, 'filled');
    b.conns[0]!.socket.end('421 4.4.2 idle timeout\r\n');
    await until(() => pool.size === 0, 'the closed one to leave the pool');
    assert.equal(pool.take(), null, 'nothing ready: the caller greets one itself');
    await until(() => pool.size === 1, 'a fresh one');
    const g = pool.take();
    assert.ok(g && !g.conn.closed && g.conn.idle);
    assert.equal(b.conns.length, 2);
    g.conn.quit();
  });

  it('take() skips a connection that is not quiet (the backend said something unasked) and drops it', async () => {
    const { b, pool } = await setup({ idle: 1 });
    await until(() => pool.size === 1, 'filled');
    b.conns[0]!.socket.write('421 4.4.2 closing soon\r\n');
    await sleep(50);
    assert.equal(pool.take(), null);
    await until(() => b.conns[0]!.closed, 'the noisy one to be dropped');
  });

  it('acquire(helo): a connection greeted as us is used as is, with no second EHLO', async () => {
    const { b, pool } = await setup({ idle: 1 });
    await until(() => pool.size === 1, 'filled');
    const g = await pool.acquire('client.example');
    assert.ok(g);
    assert.deepEqual(b.conns[0]!.commands, ['EHLO postern.test']);
    g.conn.quit();
  });

  it('acquire(helo): one that carried another client’s name says EHLO again first; one with the same name does not', async () => {
    const { b, pool } = await setup({ idle: 0 });
    const g = await greet(parseHostPort(b.address), OPTS);
    // A session made EHLO as its client, then ended cleanly.
    await g.conn.command('EHLO first-client.example', 1000);
    pool.give(g);
    assert.equal(pool.size, 1);
    const same = await pool.acquire('first-client.example');
    assert.equal(same?.conn, g.conn);
    assert.deepEqual(b.conns[0]!.commands, ['EHLO postern.test', 'EHLO first-client.example']);
    pool.give(same!);
    const other = await pool.acquire('second-client.example');
    assert.equal(other?.conn, g.conn);
    assert.deepEqual(b.conns[0]!.commands, ['EHLO postern.test', 'EHLO first-client.example', 'EHLO second-client.example']);
    assert.equal(g.conn.helo, 'second-client.example');
    other!.conn.quit();
  });

  it('acquire(helo): a refused EHLO drops that connection and returns null', async () => {
    const { b, pool } = await setup({ idle: 0 }, { reply: (line) => (line === 'EHLO bad.example' ? '550 5.7.1 no\r\n' : undefined) });
    const g = await greet(parseHostPort(b.address), OPTS);
    await g.conn.command('EHLO someone.example', 1000);
    pool.give(g);
    assert.equal(await pool.acquire('bad.example'), null);
    await until(() => b.conns[0]!.closed, 'the connection to be dropped');
    assert.equal(pool.size, 0);
  });

  it('give(): a clean connection is kept (parked); the most recently given goes first', async () => {
    const { b, pool } = await setup({ idle: 0 });
    const g1 = await greet(parseHostPort(b.address), OPTS);
    const g2 = await greet(parseHostPort(b.address), OPTS);
    pool.give(g1);
    pool.give(g2);
    assert.equal(pool.size, 2);
    assert.equal(typeof g1.parked, 'number');
    assert.equal(pool.take()?.conn, g2.conn);
    assert.equal(pool.take()?.conn, g1.conn);
    assert.equal(pool.take(), null);
    g1.conn.quit();
    g2.conn.quit();
  });

  it('give(): when the server is not usable (down, draining) the connection is ended with QUIT', async () => {
    let usable = true;
    const { b, pool } = await setup({ idle: 0 }, {}, () => usable);
    const g = await greet(parseHostPort(b.address), OPTS);
    usable = false;
    pool.give(g);
    assert.equal(pool.size, 0);
    await until(() => b.conns[0]!.closed, 'closed');
    assert.ok(b.conns[0]!.quit, 'QUIT, not a bare drop');
  });

  it('give(): a connection past max_age, or one that is not quiet, is ended with QUIT', async () => {
    const { b, pool } = await setup({ idle: 0, maxAge: 150 });
    const old = await greet(parseHostPort(b.address), OPTS);
    await sleep(200);
    pool.give(old);
    assert.equal(pool.size, 0);
    await until(() => b.conns[0]!.quit, 'QUIT on the old one');
    const noisy = await greet(parseHostPort(b.address), OPTS);
    b.conns[1]!.socket.write('250 unasked\r\n');
    await until(() => !noisy.conn.idle, 'the reply to arrive');
    pool.give(noisy);
    assert.equal(pool.size, 0);
    await until(() => b.conns[1]!.quit, 'QUIT on the noisy one');
  });

  it('a parked connection is ended with QUIT after `keepalive`, never dropped', async () => {
    const { b, pool } = await setup({ idle: 0, keepalive: 200 });
    const g = await greet(parseHostPort(b.address), OPTS);
    pool.give(g);
    assert.equal(pool.size, 1);
    await until(() => pool.size === 0, 'the sweep to retire it', 2000);
    await until(() => b.conns[0]!.closed, 'closed');
    assert.ok(b.conns[0]!.quit);
  });

  it('ready connections are replaced before max_age (QUIT, then a fresh one)', async () => {
    const { b, pool } = await setup({ idle: 1, maxAge: 200 });
    await until(() => pool.size === 1, 'filled');
    await until(() => b.conns.length >= 2 && b.conns[0]!.quit, 'the first to be replaced', 2000);
    await until(() => pool.size === 1, 'refilled');
  });

  it('a pool for a server that is not usable stays empty', async () => {
    const { b, pool } = await setup({ idle: 2 }, {}, () => false);
    await sleep(100);
    assert.equal(pool.size, 0);
    assert.equal(b.conns.length, 0);
  });

  it('a server that refuses greetings is retried with backoff, not hammered', async () => {
    const { b, pool } = await setup({ idle: 1 }, { greeting: () => '421 4.3.2 busy\r\n' });
    await sleep(700);
    assert.equal(pool.size, 0);
    // Delays 200, 400, 800 ms ...: a handful of attempts in 700 ms, not hundreds.
    assert.ok(b.conns.length >= 2 && b.conns.length <= 5, `${b.conns.length} attempts`);
  });

  it('close() ends every ready connection with QUIT and stops filling', async () => {
    const { b, pool } = await setup({ idle: 2 });
    await until(() => pool.size === 2, 'filled');
    pool.close();
    assert.equal(pool.size, 0);
    await until(() => b.conns.every((c) => c.closed), 'all closed');
    assert.ok(b.conns.every((c) => c.quit));
    assert.equal(pool.take(), null);
    await sleep(50);
    assert.equal(b.conns.length, 2, 'no refill after close');
    // A connection handed back after close is ended, not kept.
    const g = await greet(parseHostPort(b.address), OPTS);
    pool.give(g);
    assert.equal(pool.size, 0);
    await until(() => b.conns[2]!.quit, 'QUIT on the late one');
  });
});
