// Listener.localEndpoint: the local address of every connection, read once when the listener
// is bound to one address, and asked per connection (null here) when it is a wildcard.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { Listener } from '../../src/server/listener.js';

function listenerOn(listen: string): Listener {
  const cfg = parseConfig(`hostname: l.test\nlisteners:\n  - { name: smtp, listen: "${listen}" }\nbackends: { servers: [ { address: 127.0.0.1:2525 } ] }\n`).listeners[0]!;
  return new Listener(cfg, (s) => s.destroy());
}

describe('Listener.localEndpoint', () => {
  it('a listener on one address: the bound address and port, the same a connection reads from its socket', async () => {
    const seen: { address?: string; port?: number }[] = [];
    const l = new Listener(listenerOn('127.0.0.1:0').cfg, (s) => {
      seen.push({ address: s.localAddress, port: s.localPort });
      s.destroy();
    });
    await l.listen();
    try {
      const at = l.localEndpoint();
      assert.deepEqual(at, { address: '127.0.0.1', port: l.address().port });
      assert.equal(l.localEndpoint(), at, 'read once');
      await new Promise<void>((resolve) => net.connect(at!.port, '127.0.0.1').on('close', () => resolve()).on('error', () => undefined));
      assert.deepEqual(seen, [{ address: at!.address, port: at!.port }]);
    } finally {
      await l.close();
    }
  });

  it('a wildcard listener: null (each connection asks its own socket)', async () => {
    const l = listenerOn('0.0.0.0:0');
    await l.listen();
    try {
      assert.equal(l.localEndpoint(), null);
    } finally {
      await l.close();
    }
  });
});
