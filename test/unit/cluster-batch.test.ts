// Cluster IPC batching: admission traffic queued during one event-loop turn goes as one
// IPC message, in order; other messages never overtake it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Batcher, type ClusterMessage } from '../../src/server/cluster/messages.js';
import { RELEASE_BATCH_MS, RemoteAdmission, send } from '../../src/server/cluster/worker.js';

const turn = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('Batcher', () => {
  it('delivers what is queued in one turn as one batch, in order, at the end of the turn', async () => {
    const out: number[][] = [];
    const b = new Batcher<number>((msgs) => out.push(msgs));
    for (let i = 0; i < 5; i++) b.push(i);
    assert.deepEqual(out, [], 'nothing goes synchronously');
    assert.equal(b.size, 5);
    await turn();
    assert.deepEqual(out, [[0, 1, 2, 3, 4]]);
    b.push(5);
    b.push(6);
    await turn();
    assert.deepEqual(out, [[0, 1, 2, 3, 4], [5, 6]], 'the next turn is the next batch');
    await turn();
    assert.equal(out.length, 2, 'an empty queue delivers nothing');
  });

  it('schedules at most one delivery at a time', () => {
    const runs: (() => void)[] = [];
    const out: string[][] = [];
    const b = new Batcher<string>((msgs) => out.push(msgs), (run) => runs.push(run));
    b.push('a');
    b.push('b');
    assert.equal(runs.length, 1);
    // A synchronous flush delivers at once; the scheduled run still pending takes what comes next.
    b.flush();
    assert.deepEqual(out, [['a', 'b']]);
    b.push('c');
    assert.equal(runs.length, 1, 'no second delivery scheduled while one is pending');
    runs[0]!();
    assert.deepEqual(out, [['a', 'b'], ['c']]);
    b.push('d');
    assert.equal(runs.length, 2, 'once it ran, the next push schedules again');
    b.flush();
    runs[1]!();
    assert.deepEqual(out, [['a', 'b'], ['c'], ['d']], 'a run after a flush delivers nothing more');
  });
});

describe('Batcher.pushLater', () => {
  it('waits up to its delay, so that what comes meanwhile shares the delivery', async () => {
    const out: string[][] = [];
    const b = new Batcher<string>((msgs) => out.push(msgs));
    b.pushLater('r1', 20);
    await turn();
    assert.deepEqual(out, [], 'not at the end of the turn');
    b.pushLater('r2', 20);
    await sleep(40);
    assert.deepEqual(out, [['r1', 'r2']], 'both in one delivery, within the delay');
  });

  it('goes at once with a message pushed for this turn, in order, and is never delivered twice', async () => {
    const out: string[][] = [];
    const b = new Batcher<string>((msgs) => out.push(msgs));
    b.pushLater('release', 20);
    b.push('admit');
    await turn();
    assert.deepEqual(out, [['release', 'admit']]);
    await sleep(40);
    assert.equal(out.length, 1, 'the delay ran out with nothing left');
    b.pushLater('late', 1000);
    b.flush();
    assert.deepEqual(out, [['release', 'admit'], ['late']], 'a flush takes it and drops its timer');
  });
});

describe('worker side over a stubbed IPC channel', () => {
  const sent: ClusterMessage[] = [];
  let restore: () => void;
  before(() => {
    const had = Object.getOwnPropertyDescriptor(process, 'send');
    const hadConnected = Object.getOwnPropertyDescriptor(process, 'connected');
    Object.defineProperty(process, 'send', { configurable: true, writable: true, value: (m: ClusterMessage) => (sent.push(m), true) });
    Object.defineProperty(process, 'connected', { configurable: true, get: () => true });
    restore = () => {
      if (had) Object.defineProperty(process, 'send', had);
      else delete (process as { send?: unknown }).send;
      if (hadConnected) Object.defineProperty(process, 'connected', hadConnected);
      else delete (process as { connected?: unknown }).connected;
    };
  });
  after(() => restore());

  it('a release then an admit in one turn go as one batch, release first; replies may come batched', async () => {
    sent.length = 0;
    const remote = new RemoteAdmission();
    remote.release('192.0.2.1');
    const a = remote.admit('192.0.2.1');
    const b = remote.admit('192.0.2.2');
    remote.force('192.0.2.3');
    assert.equal(sent.length, 0);
    await turn();
    assert.deepEqual(sent, [
      {
        postern: 'batch',
        msgs: [
          { postern: 'release', ip: '192.0.2.1' },
          { postern: 'admit', id: 1, ip: '192.0.2.1' },
          { postern: 'admit', id: 2, ip: '192.0.2.2' },
          { postern: 'force', ip: '192.0.2.3' },
        ],
      },
    ]);
    // The primary's replies, one batch for both.
    const refusal = { limit: 'per_ip_connections' as const, text: 'Too many connections from your address' };
    process.emit('message', { postern: 'batch', msgs: [{ postern: 'admitted', id: 2, refusal }, { postern: 'admitted', id: 1, refusal: null }] }, undefined);
    assert.equal(await a, null);
    assert.deepEqual(await b, refusal);
    // The single form is still understood.
    const c = remote.admit('192.0.2.4');
    await turn();
    assert.deepEqual(sent[1], { postern: 'admit', id: 3, ip: '192.0.2.4' }, 'a batch of one goes as itself');
    process.emit('message', { postern: 'admitted', id: 3, refusal: null }, undefined);
    assert.equal(await c, null);
    remote.close();
  });

  it(`releases alone wait up to RELEASE_BATCH_MS (${RELEASE_BATCH_MS} ms) and go together (one IPC message, not one per session)`, async () => {
    sent.length = 0;
    const remote = new RemoteAdmission();
    remote.release('192.0.2.5');
    await turn();
    assert.deepEqual(sent, [], 'not at the end of the turn');
    remote.release('192.0.2.6');
    await sleep(RELEASE_BATCH_MS / 4);
    assert.deepEqual(sent, [], 'nor before the delay');
    await sleep(RELEASE_BATCH_MS + 30);
    assert.deepEqual(sent, [{ postern: 'batch', msgs: [{ postern: 'release', ip: '192.0.2.5' }, { postern: 'release', ip: '192.0.2.6' }] }]);
    remote.close();
  });

  it('a status or ready message does not overtake queued admission messages', async () => {
    sent.length = 0;
    send({ postern: 'release', ip: '192.0.2.9' });
    send({ postern: 'ready' });
    assert.deepEqual(sent, [{ postern: 'release', ip: '192.0.2.9' }, { postern: 'ready' }], 'the queue went first, synchronously');
    await turn();
    assert.equal(sent.length, 2, 'and nothing is sent twice');
  });
});
