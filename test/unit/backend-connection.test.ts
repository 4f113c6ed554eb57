// backend/connection.ts and backend/dialog.ts against a scripted SMTP server on loopback:
// what a connection leaves behind once it has ended, and the EHLO parse a server's sessions share.
import assert from 'node:assert/strict';
import { createHook, executionAsyncId } from 'node:async_hooks';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { BackendConnection } from '../../src/backend/connection.js';
import { ehlo, greeting } from '../../src/backend/dialog.js';
import type { HostPort } from '../../src/config/types.js';
import { startScriptBackend, until, type ScriptBackend } from '../helpers/script-backend.js';

function hostPort(b: ScriptBackend): HostPort {
  return { host: '127.0.0.1', port: b.port, text: b.address };
}

/**
 * Timers created by `fn` (its own async chain: the unit files share a process, and another
 * file's timers must not count) that are still pending (neither fired nor cleared) after it.
 */
async function pendingTimersAfter(fn: () => Promise<void>, made?: { count: number }): Promise<number> {
  const ours = new Set<number>([executionAsyncId()]);
  const live = new Set<number>();
  const hook = createHook({
    init(id, type, trigger) {
      if (!ours.has(trigger)) return;
      ours.add(id);
      if (type !== 'Timeout') return;
      live.add(id);
      if (made) made.count++;
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  try {
    await fn();
    // A cleared timer's destroy hook runs on a later turn.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  } finally {
    hook.disable();
  }
  return live.size;
}

describe('BackendConnection', () => {
  const backends: ScriptBackend[] = [];
  after(async () => {
    for (const b of backends) await b.close();
  });

  it("quit(): the grace timer goes once the server has closed (it would hold the connection for the whole grace)", async () => {
    const b = await startScriptBackend();
    backends.push(b);
    const conn = await BackendConnection.connect(hostPort(b), 2000);
    await greeting(conn, 2000);
    const pending = await pendingTimersAfter(async () => {
      conn.quit(60_000);
      await until(() => conn.closed && b.conns[0]!.closed, 'the connection to close after QUIT');
    });
    assert.equal(b.conns[0]!.quit, true, 'the server got QUIT');
    assert.equal(pending, 0, 'no timer left pending once the connection closed');
  });

  it('quit(): a server that neither answers nor closes is cut off once the grace has passed', async () => {
    // Half-open allowed: our FIN after QUIT does not close the server's side.
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.write('220 mute.example ESMTP\r\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const conn = await BackendConnection.connect({ host: '127.0.0.1', port, text: `127.0.0.1:${port}` }, 2000);
      await greeting(conn, 2000);
      const closed = new Promise<void>((r) => conn.socket.once('close', () => r()));
      const t0 = Date.now();
      conn.quit(200);
      await closed;
      const took = Date.now() - t0;
      assert.ok(took >= 190, `closed after ${took} ms, before the grace`);
      assert.equal(conn.closed, true);
    } finally {
      server.close();
    }
  });

  it('one timer serves the connect deadline, every awaited reply and QUIT\'s grace', async () => {
    const b = await startScriptBackend();
    backends.push(b);
    const made = { count: 0 };
    const pending = await pendingTimersAfter(async () => {
      const conn = await BackendConnection.connect(hostPort(b), 5000);
      await greeting(conn, 5000);
      await ehlo(conn, 'one.example', 5000);
      const closed = new Promise<void>((r) => conn.socket.once('close', () => r()));
      conn.quit(60_000);
      await closed;
    }, made);
    assert.equal(made.count, 1, 'timers made for connect, greeting, EHLO and QUIT');
    assert.equal(pending, 0, 'no timer left once the connection closed');
  });

  it('connect(): a refused connection is BACKEND_CONNECT naming the server, with no timer left', async () => {
    const spare = net.createServer();
    await new Promise<void>((r) => spare.listen(0, '127.0.0.1', r));
    const port = (spare.address() as net.AddressInfo).port;
    await new Promise((r) => spare.close(r));
    let caught: unknown = null;
    const pending = await pendingTimersAfter(async () => {
      caught = await BackendConnection.connect({ host: '127.0.0.1', port, text: `127.0.0.1:${port}` }, 5000).then(
        () => null,
        (err: unknown) => err,
      );
    });
    assert.ok(caught instanceof Error);
    assert.equal((caught as { code?: string }).code, 'BACKEND_CONNECT');
    assert.match((caught as Error).message, new RegExp(`^connect to 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    assert.equal(pending, 0, 'the connect deadline is cleared with the failure');
  });
});

/** Greets, answers `250 ok` to the first `answered` lines of each connection, then says nothing more. */
async function quietServer(answered: number): Promise<{ server: net.Server; hp: HostPort }> {
  const server = net.createServer((s) => {
    let n = 0;
    s.on('error', () => undefined);
    s.write('220 quiet.example ESMTP\r\n');
    s.on('data', (d) => {
      for (const _line of d.toString('latin1').split('\r\n').slice(0, -1)) if (n++ < answered) s.write('250 ok\r\n');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return { server, hp: { host: '127.0.0.1', port, text: `127.0.0.1:${port}` } };
}

describe('BackendConnection.expect(): one deadline timer per connection (issue 26)', () => {
  const servers: net.Server[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  it('each awaited reply keeps its own deadline: a short one after a long one expires on time', async () => {
    const { server, hp } = await quietServer(1);
    servers.push(server);
    const made = { count: 0 };
    let elapsed = 0;
    let err: unknown = null;
    let forReplies = 0;
    const pending = await pendingTimersAfter(async () => {
      const conn = await BackendConnection.connect(hp, 2000);
      await greeting(conn, 60_000);
      assert.equal((await conn.command('NOOP', 60_000)).code, 250);
      const t0 = Date.now();
      err = await conn.command('NOOP', 80).then(
        () => null,
        (e: unknown) => e,
      );
      elapsed = Date.now() - t0;
      // Counted before the wait for the close below, whose polling makes timers of its own.
      forReplies = made.count;
      conn.destroy();
      await until(() => conn.closed, 'the connection to close', 10_000);
    }, made);
    assert.equal((err as { code?: string } | null)?.code, 'BACKEND_TIMEOUT', 'the third reply never came');
    assert.ok(elapsed >= 70 && elapsed < 15_000, `timed out after ${elapsed} ms (its own 80 ms, not the 60 s before it)`);
    // connect's own deadline, the one armed at the greeting, and the one armed again for 80 ms.
    assert.ok(forReplies <= 3, `${forReplies} timers for three awaited replies and a connect`);
    assert.equal(pending, 0, 'nothing left pending once the connection closed');
  });

  it('a later deadline than the armed timer: the timer fires early, is armed again, and the reply is late only at its own deadline', async () => {
    const { server, hp } = await quietServer(1);
    servers.push(server);
    const conn = await BackendConnection.connect(hp, 2000);
    await greeting(conn, 40);
    // The timer armed for 40 ms is still running; this reply's deadline is 300 ms.
    const t0 = Date.now();
    assert.equal((await conn.command('NOOP', 300)).code, 250);
    const err = await conn.command('NOOP', 300).then(
      () => null,
      (e: unknown) => e,
    );
    const elapsed = Date.now() - t0;
    assert.equal((err as { code?: string } | null)?.code, 'BACKEND_TIMEOUT');
    assert.ok(elapsed >= 290, `late after ${elapsed} ms, not at the 40 ms the timer was first armed for`);
    conn.destroy();
  });

  it('a reply that comes within its deadline is never failed by a timer armed earlier', async () => {
    const { server, hp } = await quietServer(3);
    servers.push(server);
    const conn = await BackendConnection.connect(hp, 2000);
    await greeting(conn, 30);
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 20));
      assert.equal((await conn.command('NOOP', 1000)).code, 250, `reply ${i + 1}`);
    }
    conn.destroy();
  });
});

describe('ehlo(): the parse is shared while the reply stays the same', () => {
  const backends: ScriptBackend[] = [];
  after(async () => {
    for (const b of backends) await b.close();
  });

  async function session(b: ScriptBackend) {
    const conn = await BackendConnection.connect(hostPort(b), 2000);
    await greeting(conn, 2000);
    const caps = await ehlo(conn, 'client.example', 2000);
    conn.quit();
    return caps;
  }

  it('the same reply gives the same capabilities; a changed one is parsed anew', async () => {
    const keys = ['PIPELINING', 'SIZE 1000'];
    const b = await startScriptBackend({ ehlo: keys });
    backends.push(b);
    const first = await session(b);
    const second = await session(b);
    assert.equal(second, first, 'one parse for two sessions');
    assert.deepEqual([...first.entries()], [['PIPELINING', []], ['SIZE', ['1000']]]);
    // The server is reconfigured: its next EHLO reply differs, and so do the capabilities.
    keys.splice(0, keys.length, 'PIPELINING', 'SIZE 2000', 'LIMITS RCPTMAX=5');
    const third = await session(b);
    assert.notEqual(third, first);
    assert.deepEqual([...third.entries()], [['PIPELINING', []], ['SIZE', ['2000']], ['LIMITS', ['RCPTMAX=5']]]);
    assert.deepEqual([...first.entries()], [['PIPELINING', []], ['SIZE', ['1000']]], 'an earlier parse is left as it was');
  });

  it('two servers with different replies each keep their own', async () => {
    const a = await startScriptBackend({ ehlo: ['PIPELINING'] });
    const c = await startScriptBackend({ ehlo: ['8BITMIME'] });
    backends.push(a, c);
    const fromA = await session(a);
    const fromC = await session(c);
    assert.deepEqual([...fromA.keys()], ['PIPELINING']);
    assert.deepEqual([...fromC.keys()], ['8BITMIME']);
    assert.equal(await session(a), fromA);
  });
});
