// backend/connection.ts and backend/dialog.ts against a scripted SMTP server on loopback:
// what a connection leaves behind once it has ended, and the EHLO parse a server's sessions share.
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { after, describe, it } from 'node:test';
import { BackendConnection } from '../../src/backend/connection.js';
import { ehlo, greeting } from '../../src/backend/dialog.js';
import type { HostPort } from '../../src/config/types.js';
import { startScriptBackend, until, type ScriptBackend } from '../helpers/script-backend.js';

function hostPort(b: ScriptBackend): HostPort {
  return { host: '127.0.0.1', port: b.port, text: b.address };
}

/** Timers created while `fn` runs that are still pending (neither fired nor cleared) after it. */
async function pendingTimersAfter(fn: () => Promise<void>): Promise<number> {
  const live = new Set<number>();
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout') live.add(id);
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
