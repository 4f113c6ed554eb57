// The cluster's one message router per process: each kind to its handlers, batches
// unwrapped in order, foreign messages passed by, handlers removable.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Dispatcher } from '../../src/server/cluster/dispatcher.js';

describe('Dispatcher', () => {
  it('routes each message of a batch, in order, to the handlers of its kind, with its sender', () => {
    const d = new Dispatcher<string>();
    const seen: string[] = [];
    d.on('release', (m, from) => seen.push(`release ${m.ip} from ${from}`));
    d.on('admit', (m, from) => seen.push(`admit ${m.id} ${m.ip} from ${from}`));
    d.dispatch(
      {
        postern: 'batch',
        msgs: [
          { postern: 'release', ip: '192.0.2.1' },
          { postern: 'admit', id: 7, ip: '192.0.2.1' },
          { postern: 'force', ip: '192.0.2.2' },
        ],
      },
      'w1',
    );
    d.dispatch({ postern: 'admit', id: 8, ip: '192.0.2.3' }, 'w2');
    assert.deepEqual(seen, ['release 192.0.2.1 from w1', 'admit 7 192.0.2.1 from w1', 'admit 8 192.0.2.3 from w2']);
  });

  it('passes by what is not a cluster message, and a batch without a list', () => {
    const d = new Dispatcher<void>();
    let n = 0;
    d.on('ready', () => n++);
    for (const m of [null, 'ready', 42, { cmd: 'NODE_CLUSTER' }, { postern: 7 }, { postern: 'batch', msgs: 'x' }, { postern: 'unknown-kind' }]) d.dispatch(m, undefined);
    assert.equal(n, 0);
    d.dispatch({ postern: 'ready' }, undefined);
    assert.equal(n, 1);
  });

  it('hands the socket handle through, and every handler of a kind runs until removed', () => {
    const d = new Dispatcher<void>();
    const got: unknown[] = [];
    const handle = { fd: 9 };
    const off = d.on('socket', (m, _from, h) => got.push([m.name, h]));
    d.on('socket', () => got.push('second'));
    d.dispatch({ postern: 'socket', name: 'smtp', index: 0, count: 1 }, undefined, handle);
    off();
    d.dispatch({ postern: 'socket', name: 'smtp', index: 0, count: 1 }, undefined, handle);
    assert.deepEqual(got, [['smtp', handle], 'second', 'second']);
  });

  it('a handler may remove itself while the kind is being dispatched', () => {
    const d = new Dispatcher<void>();
    const calls: string[] = [];
    const off = d.on('stop', () => {
      calls.push('once');
      off();
    });
    d.on('stop', () => calls.push('always'));
    d.dispatch({ postern: 'batch', msgs: [{ postern: 'stop' }, { postern: 'stop' }] }, undefined);
    assert.deepEqual(calls, ['once', 'always', 'always']);
  });
});
