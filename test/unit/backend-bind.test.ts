// backend/bind.ts: bind() over the pool's servers (failover, the pool's books) and the
// Binding a session holds (unbind, park, abort, reusable), against scripted SMTP servers
// on loopback and a pool built from a real parsed config.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bind, type Binding, type BindRequest } from '../../src/backend/bind.js';
import { BackendPool } from '../../src/backend/pool.js';
import type { Config } from '../../src/config/index.js';
import type { Reply } from '../../src/smtp/reply.js';
import { freePort } from '../helpers/net.js';
import { QUICK_BACKENDS, TEST_CLIENT as CLIENT, suiteBackends, testPool, type Rec } from '../helpers/pool.js';
import { until, type ScriptBackend, type ScriptOptions } from '../helpers/script-backend.js';

interface Setup {
  pool: BackendPool;
  cfg: Config;
  records: Rec[];
  request(over?: Partial<BindRequest>): BindRequest;
}

function setup(servers: string[], backends: string): Setup {
  const { cfg, pool, logger, records } = testPool(servers, `${QUICK_BACKENDS}\n${backends}`);
  return {
    pool,
    cfg,
    records,
    request: (over = {}) => ({
      pool,
      cfg: cfg.backends,
      hostname: cfg.hostname,
      client: CLIENT,
      clientKey: CLIENT.address,
      logger,
      connId: 'conn1',
      cancelled: () => false,
      ...over,
    }),
  };
}

/** Sends `line` on the binding in relay mode; resolves with the backend's reply. */
function command(b: Binding, line: string, replies: Reply[]): Promise<Reply> {
  const n = replies.length;
  b.write(line + '\r\n');
  return until(() => replies.length > n, `the reply to ${line}`).then(() => replies[n]!);
}

describe('bind() and Binding', () => {
  const { backend, tracked } = suiteBackends();

  it('identity none: one EHLO as the client; the server is reported up, its session counted', async () => {
    const b = await backend({ ehlo: ['PIPELINING', 'SIZE 777', 'LIMITS MAILMAX=4 RCPTMAX=9'] });
    const s = tracked(setup([b.address], 'identity: none'));
    const binding = await bind(s.request());
    assert.ok(binding);
    const server = s.pool.servers[0]!;
    assert.equal(binding.server, server);
    assert.equal(server.active, 1);
    assert.equal(server.up, true, 'reportSuccess');
    assert.deepEqual(b.conns[0]!.commands, ['EHLO client.example']);
    assert.equal(binding.size, 777);
    assert.deepEqual(binding.limits, { mailmax: 4, rcptmax: 9, rcptdomainmax: null });
    assert.equal(binding.reused, 0);
    binding.unbind();
  });

  it('identity xclient: EHLO as us, XCLIENT with the client, EHLO as the client', async () => {
    const b = await backend({
      ehlo: ['PIPELINING', 'XCLIENT ADDR PORT NAME HELO PROTO LOGIN'],
      reply: (line) => (line.startsWith('XCLIENT ') ? '220 script.test ESMTP\r\n' : undefined),
    });
    const s = tracked(setup([b.address], 'identity: xclient'));
    const binding = await bind(s.request());
    assert.ok(binding);
    const cmds = b.conns[0]!.commands;
    assert.equal(cmds[0], 'EHLO postern.test');
    assert.match(cmds[1]!, /^XCLIENT .*ADDR=192\.0\.2\.10/);
    assert.match(cmds[1]!, /PORT=40000/);
    assert.match(cmds[1]!, /HELO=client\.example/);
    assert.equal(cmds[2], 'EHLO client.example');
    binding.unbind();
  });

  it('fails over from a server that refuses to one that works, and reports the refusal to the pool', async () => {
    const refusing = await backend({ greeting: () => '554 5.3.2 no service here\r\n' });
    const good = await backend();
    const s = tracked(setup([refusing.address, good.address], 'identity: none\nstrategy: least-connections'));
    const binding = await bind(s.request());
    assert.ok(binding);
    const [bad, ok] = s.pool.servers;
    assert.equal(binding.server, ok);
    assert.equal(bad!.up, false);
    assert.match(bad!.reason, /^session: greeting refused: 554 5\.3\.2 no service here/);
    assert.equal(bad!.active, 0, 'released after the failure');
    assert.equal(ok!.active, 1);
    assert.equal(refusing.conns.length, 1);
    const warn = s.records.find((r) => r.msg === 'backend handshake failed');
    assert.equal(warn?.backend, bad!.key);
    assert.equal(warn?.code, 'BACKEND_REPLY');
    await until(() => refusing.conns[0]!.closed, 'the refused connection to be closed');
    // The next session goes straight to the working server.
    const again = await bind(s.request());
    assert.equal(again?.server, ok);
    assert.equal(refusing.conns.length, 1);
    binding.unbind();
    again!.unbind();
  });

  it('fails over past a closed port and an EHLO refusal; when every server fails: null and a bind_failed record', async () => {
    const ehloNo = await backend({ reply: (line) => (line.startsWith('EHLO') ? '550 5.7.1 not you\r\n' : undefined) });
    const closed = `127.0.0.1:${await freePort()}`;
    const s = tracked(setup([closed, ehloNo.address], 'identity: none'));
    assert.equal(await bind(s.request()), null);
    const failed = s.records.find((r) => r.event === 'bind_failed');
    assert.deepEqual(failed?.tried, [closed, ehloNo.address]);
    assert.equal(failed?.msg, 'every backend failed');
    assert.equal(failed?.conn, 'conn1');
    for (const server of s.pool.servers) {
      assert.equal(server.up, false);
      assert.equal(server.active, 0);
    }
    assert.match(s.pool.servers[1]!.reason, /EHLO refused: 550/);
  });

  it('no server up: null at once, nothing tried', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none'));
    s.pool.reportFailure(s.pool.servers[0]!, new Error('down for the test'));
    assert.equal(await bind(s.request()), null);
    assert.equal(b.conns.length, 0);
    const failed = s.records.find((r) => r.event === 'bind_failed');
    assert.deepEqual(failed?.tried, []);
    assert.equal(failed?.msg, 'no backend is up');
  });

  it('a client the identity cannot name (PROXY needs an IP) fails without trying others or marking anyone down', async () => {
    const a = await backend();
    const b = await backend();
    const s = tracked(setup([a.address, b.address], 'identity: proxy-v1'));
    assert.equal(await bind(s.request({ client: { ...CLIENT, address: 'not-an-address' } })), null);
    assert.equal(a.conns.length + b.conns.length, 0, 'no connection made');
    for (const server of s.pool.servers) {
      assert.notEqual(server.up, false);
      assert.equal(server.active, 0);
    }
    assert.ok(s.records.some((r) => r.msg === 'cannot bind this client'));
  });

  it('the session ending during the handshake: null, QUIT to the backend, nothing counted', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none'));
    let asked = 0;
    // Not cancelled when bind starts, cancelled by the time the handshake is done.
    const binding = await bind(s.request({ cancelled: () => asked++ > 0 }));
    assert.equal(binding, null);
    assert.equal(s.pool.servers[0]!.active, 0);
    await until(() => b.conns[0]?.closed === true, 'the connection to end');
    assert.ok(b.conns[0]!.quit, 'QUIT, not a drop');
  });

  it('a session already ended before bind: nothing is tried', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none'));
    assert.equal(await bind(s.request({ cancelled: () => true })), null);
    assert.equal(b.conns.length, 0);
  });

  it('unbind(): QUIT to the backend, the session released once however often it is ended', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none'));
    const binding = (await bind(s.request()))!;
    const server = s.pool.servers[0]!;
    binding.unbind();
    assert.ok(binding.ended);
    assert.equal(server.active, 0);
    binding.unbind();
    binding.abort();
    binding.park();
    assert.equal(server.active, 0, 'not released twice');
    await until(() => b.conns[0]!.closed, 'closed');
    assert.ok(b.conns[0]!.quit);
    assert.equal(b.conns[0]!.commands.filter((c) => c === 'QUIT').length, 1);
  });

  it('abort(): the backend sees the connection drop, with no QUIT (it forgets the open transaction)', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none'));
    const binding = (await bind(s.request()))!;
    binding.write('MAIL FROM:<a@example.org>\r\n');
    await until(() => b.conns[0]!.commands.length === 2, 'MAIL to arrive');
    binding.abort();
    assert.equal(s.pool.servers[0]!.active, 0);
    await until(() => b.conns[0]!.closed, 'closed');
    assert.equal(b.conns[0]!.quit, false);
  });

  it('relay(): replies go to the session; the backend closing is reported', async () => {
    const b = await backend({ reply: (line) => (line === 'NOOP' ? '250 2.0.0 noop ok\r\n' : undefined) });
    const s = tracked(setup([b.address], 'identity: none'));
    const binding = (await bind(s.request()))!;
    const replies: Reply[] = [];
    let closed: Error | null | undefined;
    binding.relay({ onReply: (r) => void replies.push(r), onClose: (err) => (closed = err) });
    assert.equal((await command(binding, 'NOOP', replies)).lines[0], '2.0.0 noop ok');
    b.conns[0]!.socket.destroy();
    await until(() => closed !== undefined, 'onClose');
    binding.abort();
  });

  describe('park and reuse (identity none)', () => {
    async function started(backendLines: string, script: ScriptOptions = {}): Promise<{ b: ScriptBackend; s: Setup }> {
      const b = await backend(script);
      const s = tracked(setup([b.address], `identity: none\n${backendLines}`));
      await s.pool.start(); // the health check (connection 0) and the greeted pools
      assert.equal(s.pool.servers[0]!.up, true);
      await until(() => b.conns[0]!.closed, 'the health check to end');
      return { b, s };
    }

    it('park(): no QUIT; the next session gets the same connection with no new handshake, counted as reused', async () => {
      const { b, s } = await started('pool: { reuse: 10, keepalive: 5s }');
      const first = (await bind(s.request()))!;
      assert.equal(b.conns.length, 2);
      assert.ok(first.reusable(10, 20));
      first.park();
      const server = s.pool.servers[0]!;
      assert.equal(server.active, 0);
      assert.equal(server.greeted?.size, 1);
      const second = (await bind(s.request()))!;
      assert.equal(second.conn, first.conn);
      assert.equal(second.reused, 1);
      assert.equal(b.conns.length, 2, 'no new connection');
      assert.deepEqual(b.conns[1]!.commands, ['EHLO client.example'], 'same HELO: nothing said again');
      assert.equal(b.conns[1]!.quit, false);
      second.park();
      // Another client: the same connection, after an EHLO in that client's name.
      const third = (await bind(s.request({ client: { ...CLIENT, helo: 'other.example' } })))!;
      assert.equal(third.conn, first.conn);
      assert.equal(third.reused, 2);
      assert.deepEqual(b.conns[1]!.commands, ['EHLO client.example', 'EHLO other.example']);
      third.unbind();
    });

    it('reusable(): not after the backend answered 4xx or 5xx on it', async () => {
      const { s } = await started('pool: { reuse: 10 }', { reply: (line) => (line.startsWith('RCPT') ? '450 4.2.0 mailbox busy\r\n' : undefined) });
      const binding = (await bind(s.request()))!;
      const replies: Reply[] = [];
      binding.relay({ onReply: (r) => void replies.push(r), onClose: () => undefined });
      await command(binding, 'MAIL FROM:<a@example.org>', replies);
      assert.ok(binding.reusable(10, 20), '250s keep it clean');
      assert.equal((await command(binding, 'RCPT TO:<b@example.net>', replies)).code, 450);
      await command(binding, 'RSET', replies);
      assert.equal(binding.reusable(10, 20), false);
      binding.unbind();
    });

    it('reusable(): not once the connection has carried `reuse` sessions', async () => {
      const { s } = await started('pool: { reuse: 2 }');
      const first = (await bind(s.request()))!;
      assert.ok(first.reusable(2, 20));
      first.park();
      const second = (await bind(s.request()))!;
      assert.equal(second.conn, first.conn);
      assert.equal(second.reusable(2, 20), false, 'two sessions carried');
      second.unbind();
    });

    it('reusable(): the backend’s MAILMAX must leave room for a whole next session (ours: limits.mailmax)', async () => {
      const { s } = await started('pool: { reuse: 100 }', { ehlo: ['PIPELINING', 'LIMITS MAILMAX=5'] });
      const binding = (await bind(s.request()))!;
      binding.conn.transactions = 3; // three MAILs sent on this connection so far
      assert.equal(binding.reusable(100, 2), true, '3 + 2 <= 5');
      assert.equal(binding.reusable(100, 3), false, '3 + 3 > 5');
      assert.equal(binding.reusable(100, null), false, 'no MAILMAX of ours: any number may come');
      binding.unbind();
    });

    it('reusable(): not when the backend said something unasked, nor after the binding ended', async () => {
      const { b, s } = await started('pool: { reuse: 100 }');
      const binding = (await bind(s.request()))!;
      binding.conn.park(); // out of relay mode, as between sessions
      b.conns[1]!.socket.write('421 4.4.2 closing\r\n');
      await until(() => !binding.conn.idle, 'the reply to arrive');
      assert.equal(binding.reusable(100, 20), false);
      binding.unbind();
      assert.equal(binding.reusable(100, 20), false);
    });

    it('reusable() is false with identity xclient (a connection serves one client), however clean', async () => {
      const b = await backend({
        ehlo: ['PIPELINING', 'XCLIENT ADDR PORT NAME HELO'],
        reply: (line) => (line.startsWith('XCLIENT ') ? '220 script.test ESMTP\r\n' : undefined),
      });
      const s = tracked(setup([b.address], 'identity: xclient\npool: { reuse: 100, idle: 1 }'));
      await s.pool.start();
      const binding = (await bind(s.request()))!;
      assert.equal(binding.reusable(100, 20), false);
      binding.unbind();
    });

    it('a parked connection handed back with park() is QUIT by the pool’s stop()', async () => {
      const { b, s } = await started('pool: { reuse: 10, keepalive: 5s }');
      const binding = (await bind(s.request()))!;
      binding.park();
      s.pool.stop();
      await until(() => b.conns[1]!.closed, 'closed');
      assert.ok(b.conns[1]!.quit);
    });
  });
});
