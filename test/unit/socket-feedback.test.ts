// net/socket-feedback.ts: the warm-up of net.Socket's constructor opens nothing, runs once
// per process, and leaves sockets made afterwards working as before (its speed is measured
// in bench/socket-feedback.ts, not here).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import { warmSocketFeedback } from '../../src/net/socket-feedback.js';

const fds = () => readdirSync('/proc/self/fd').length;

describe('warmSocketFeedback', () => {
  it('opens no handle and no file descriptor, and does its work once per process', () => {
    const resources = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').sort();
    const before = fds();
    const first = warmSocketFeedback();
    const second = warmSocketFeedback();
    assert.ok(first === 0 || first === 100, `first call made ${first} sockets`);
    assert.equal(second, 0);
    assert.equal(fds(), before);
    assert.deepEqual(process.getActiveResourcesInfo().filter((r) => r !== 'Timeout').sort(), resources);
  });

  it('a socket made afterwards with onread options (as backend connections are) connects and exchanges bytes', async () => {
    warmSocketFeedback();
    const server = net.createServer((s) => s.on('data', (d) => s.end(Buffer.concat([Buffer.from('echo:'), d]))));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    try {
      const got: Buffer[] = [];
      const buffer = Buffer.allocUnsafe(1024);
      const closed = new Promise<void>((resolve, reject) => {
        const c = net.connect({
          host: '127.0.0.1',
          port,
          noDelay: true,
          onread: { buffer, callback: (n: number, b: Uint8Array) => (got.push(Buffer.from(b.subarray(0, n))), true) },
        });
        c.on('connect', () => c.write('ping'));
        c.on('error', reject);
        c.on('close', () => resolve());
      });
      await closed;
      assert.equal(Buffer.concat(got).toString(), 'echo:ping');
    } finally {
      server.close();
    }
  });
});
