// session/client-io.ts on a real loopback socket: once released (the session has ended),
// the socket's events reach nothing, and the socket no longer holds the session's callbacks
// (issue 26: Node may keep a closed TLS socket until a full collection, and everything it
// held survived every young collection with it).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ClientIo, type ClientEvents } from '../../src/session/client-io.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** A connected pair on loopback: `ours` as the session would hold it, `peer` as the client. */
async function pair(server: net.Server): Promise<{ ours: net.Socket; peer: net.Socket }> {
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const { port } = server.address() as net.AddressInfo;
  const peer = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.61' });
  await new Promise<void>((r) => peer.once('connect', () => r()));
  return { ours: await accepted, peer };
}

function recorder(seen: string[]): ClientEvents {
  return {
    data: () => seen.push('data'),
    end: () => seen.push('end'),
    error: () => seen.push('error'),
    close: () => seen.push('close'),
    timeout: () => seen.push('timeout'),
    drain: () => seen.push('drain'),
  };
}

/** A ClientIo attached to `socket` whose events object (standing for the session) only it references. */
function attachedTo(socket: net.Socket): { io: ClientIo; session: WeakRef<ClientEvents> } {
  const events = recorder([]);
  const io = new ClientIo(socket, events);
  io.attach();
  return { io, session: new WeakRef(events) };
}

describe('ClientIo.release()', () => {
  const server = net.createServer();
  const ready = new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  after(() => server.close());

  it('before release the session hears the socket; after it, nothing', async () => {
    await ready;
    const { ours, peer } = await pair(server);
    const seen: string[] = [];
    const io = new ClientIo(ours, recorder(seen));
    io.attach();
    peer.write('EHLO a.example\r\n');
    await new Promise<void>((r) => ours.once('data', () => r()));
    assert.deepEqual(seen, ['data']);
    io.release();
    const closed = new Promise<void>((r) => ours.once('close', () => r()));
    peer.end('QUIT\r\n');
    ours.end();
    await closed;
    peer.destroy();
    assert.deepEqual(seen, ['data'], 'no event reached the released session');
  });

  it('a released ClientIo lets its session go while the socket is still referenced', async () => {
    await ready;
    const { ours, peer } = await pair(server);
    try {
      // Made outside this async function: a suspended one keeps its locals alive.
      const { io, session } = attachedTo(ours);
      io.release();
      for (let i = 0; i < 3 && session.deref() !== undefined; i++) {
        await new Promise((r) => setImmediate(r));
        gc();
      }
      assert.equal(session.deref(), undefined, 'the session was collected while its socket lives on');
      // The socket still has io's listeners, and io is still referenced here.
      assert.ok(ours.listenerCount('data') > 0);
      assert.ok(io.socket === ours);
    } finally {
      peer.destroy();
      ours.destroy();
    }
  });
});
