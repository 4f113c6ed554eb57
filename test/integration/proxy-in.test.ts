// readProxyHeader / resolveClient over real loopback sockets, the way a listener with
// `proxy_protocol: on` uses them (pauseOnConnect sockets).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { encodeProxyV1, encodeProxyV2 } from '../../src/proxy/index.js';
import { ProxyInError, readProxyHeader, resolveClient, type ProxyRead } from '../../src/server/proxy-in.js';

interface Accepted {
  socket: net.Socket;
  result: Promise<ProxyRead>;
  /** Listener counts before readProxyHeader (net.Socket has internal ones, e.g. 'end'). */
  listeners: Record<string, number>;
}

const EVENTS = ['data', 'end', 'error', 'close', 'readable'] as const;
const counts = (s: net.Socket): Record<string, number> => Object.fromEntries(EVENTS.map((e) => [e, s.listenerCount(e)]));

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('readProxyHeader over real sockets', () => {
  let server: net.Server;
  let port: number;
  let timeoutMs = 2000;
  const accepted: Accepted[] = [];
  const waiting: ((a: Accepted) => void)[] = [];
  const clients: net.Socket[] = [];

  before(async () => {
    server = net.createServer({ pauseOnConnect: true }, (socket) => {
      const listeners = counts(socket);
      const a = { socket, listeners, result: readProxyHeader(socket, timeoutMs) };
      a.result.catch(() => undefined); // observed by the test
      const w = waiting.shift();
      if (w) w(a);
      else accepted.push(a);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    for (const c of clients) c.destroy();
    for (const a of accepted) a.socket.destroy();
    await new Promise((r) => server.close(r));
  });

  /** Connects from `localAddress` and returns both ends. */
  async function pair(localAddress = '127.0.0.1'): Promise<{ client: net.Socket; server: Accepted }> {
    const got = new Promise<Accepted>((resolve) => {
      const a = accepted.shift();
      if (a) resolve(a);
      else waiting.push(resolve);
    });
    const client = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress, noDelay: true }, () => resolve(s));
      s.once('error', reject);
    });
    client.on('error', () => undefined);
    clients.push(client);
    return { client, server: await got };
  }

  const rejectsWith = async (p: Promise<unknown>, code: string): Promise<ProxyInError> => {
    const err = await p.then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProxyInError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  };

  /** The socket is left paused with none of readProxyHeader's listeners. */
  const assertLeftClean = (a: Accepted): void => {
    assert.equal(a.socket.isPaused(), true, 'paused');
    assert.deepEqual(counts(a.socket), a.listeners, 'listener counts as before');
  };

  /** Collects what the socket yields once the caller resumes it. */
  const readMore = async (s: net.Socket, want: number): Promise<Buffer> => {
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => (buf = Buffer.concat([buf, d])));
    s.resume();
    const deadline = Date.now() + 2000;
    while (buf.length < want && Date.now() < deadline) await sleep(10);
    return buf;
  };

  it('v2 split over several writes, one byte at a time at the start', async () => {
    const { client, server: a } = await pair('127.0.0.2');
    const h = encodeProxyV2({
      command: 'proxy',
      source: { address: '203.0.113.9', port: 51515 },
      destination: { address: '198.51.100.25', port: 25 },
      uniqueId: Buffer.from('lb-1234'),
      authority: 'mx.example.org',
    });
    for (let i = 0; i < 14; i++) {
      client.write(h.subarray(i, i + 1));
      await sleep(2);
    }
    client.write(h.subarray(14, 20));
    await sleep(5);
    client.write(h.subarray(20));
    const r = await a.result;
    assert.equal(r.header.version, 2);
    assert.deepEqual(r.header.source, { address: '203.0.113.9', port: 51515 });
    assert.equal(r.header.authority, 'mx.example.org');
    assert.equal(r.rest.length, 0);
    assertLeftClean(a);
    const ep = resolveClient(r.header, a.socket);
    assert.deepEqual(ep, {
      client: { address: '203.0.113.9', port: 51515 },
      local: { address: '198.51.100.25', port: 25 },
      fromHeader: true,
    });
  });

  it('v1 split mid-line', async () => {
    const { client, server: a } = await pair();
    client.write('PROXY TCP4 192.0.2.1 ');
    await sleep(20);
    client.write('192.0.2.2 1000 ');
    await sleep(20);
    client.write('25\r');
    await sleep(20);
    client.write('\n');
    const r = await a.result;
    assert.equal(r.header.version, 1);
    assert.deepEqual(resolveClient(r.header, a.socket).client, { address: '192.0.2.1', port: 1000 });
    assertLeftClean(a);
  });

  it('header and pipelined SMTP bytes in one write: the bytes after the header come back as rest', async () => {
    const { client, server: a } = await pair();
    const h = encodeProxyV1({ family: 'tcp6', source: { address: '2001:db8::1', port: 1234 }, destination: { address: '2001:db8::2', port: 25 } });
    client.write(Buffer.concat([h, Buffer.from('EHLO early.test\r\nMAIL FROM:<a@b>\r\n')]));
    const r = await a.result;
    assert.equal(r.rest.toString(), 'EHLO early.test\r\nMAIL FROM:<a@b>\r\n');
    assert.equal(r.header.family, 'tcp6');
    assertLeftClean(a);
    // Later bytes wait in the paused socket for the session.
    client.write('RCPT TO:<c@d>\r\n');
    await sleep(30);
    assert.equal((await readMore(a.socket, 15)).toString(), 'RCPT TO:<c@d>\r\n');
  });

  it('v2 with TLVs followed by bytes that look like TLVs: those are payload, not header', async () => {
    const { client, server: a } = await pair();
    const h = encodeProxyV2({ command: 'proxy', source: { address: '127.0.0.1', port: 42 }, destination: { address: '127.0.0.1', port: 1337 }, uniqueId: Buffer.from('12345') });
    client.write(Buffer.concat([h, Buffer.from([0x05, 0x00, 0x02, 0x41, 0x42])]));
    const r = await a.result;
    assert.deepEqual([...r.rest], [0x05, 0x00, 0x02, 0x41, 0x42]);
  });

  it('never waits for bytes past the header: resolves while the client is silent', async () => {
    const { client, server: a } = await pair();
    client.write(encodeProxyV1({ family: 'tcp4', source: { address: '192.0.2.1', port: 5 }, destination: { address: '192.0.2.2', port: 25 } }));
    const t0 = Date.now();
    await a.result;
    assert.ok(Date.now() - t0 < 1000);
  });

  it('v2 LOCAL (a balancer health check): the socket keeps its own addresses', async () => {
    const { client, server: a } = await pair('127.0.0.5');
    client.write(encodeProxyV2({ command: 'local' }));
    const r = await a.result;
    assert.equal(r.header.command, 'local');
    const ep = resolveClient(r.header, a.socket);
    assert.equal(ep.fromHeader, false);
    assert.deepEqual(ep.client, { address: '127.0.0.5', port: client.localPort });
    assert.deepEqual(ep.local, { address: '127.0.0.1', port });
  });

  it('v1 UNKNOWN and v2 PROXY UNSPEC keep the socket addresses too', async () => {
    for (const h of [Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'), encodeProxyV2({ command: 'proxy' })]) {
      const { client, server: a } = await pair('127.0.0.6');
      client.write(h);
      const ep = resolveClient((await a.result).header, a.socket);
      assert.equal(ep.fromHeader, false);
      assert.equal(ep.client.address, '127.0.0.6');
    }
  });

  it('v4-mapped addresses in a v2 INET6 header are normalised to IPv4', async () => {
    const { client, server: a } = await pair();
    client.write(encodeProxyV2({ command: 'proxy', source: { address: '192.0.2.33', port: 7 }, destination: { address: '2001:db8::25', port: 25 } }));
    const r = await a.result;
    assert.equal(r.header.source?.address, '::ffff:192.0.2.33');
    const ep = resolveClient(r.header, a.socket);
    assert.deepEqual(ep.client, { address: '192.0.2.33', port: 7 });
    assert.deepEqual(ep.local, { address: '2001:db8::25', port: 25 });
  });

  it('timeout: PROXY_TIMEOUT after the limit, with what had arrived', async () => {
    timeoutMs = 200;
    try {
      const { client, server: a } = await pair();
      client.write('PROXY TCP4 ');
      const t0 = Date.now();
      const err = await rejectsWith(a.result, 'PROXY_TIMEOUT');
      assert.ok(Date.now() - t0 >= 150, 'waited for the timeout');
      assert.equal(err.received.toString(), 'PROXY TCP4 ');
      assertLeftClean(a);
      assert.equal(a.socket.destroyed, false, 'the caller decides what to say and when to close');
    } finally {
      timeoutMs = 2000;
    }
  });

  it('timeout with nothing sent at all', async () => {
    timeoutMs = 150;
    try {
      const { server: a } = await pair();
      const err = await rejectsWith(a.result, 'PROXY_TIMEOUT');
      assert.equal(err.received.length, 0);
    } finally {
      timeoutMs = 2000;
    }
  });

  it('garbage: an SMTP command instead of a header is PROXY_INVALID at once (NOT_PROXY)', async () => {
    const { client, server: a } = await pair();
    client.write('EHLO nothing.test\r\n');
    const err = await rejectsWith(a.result, 'PROXY_INVALID');
    assert.equal(err.proxyError?.code, 'NOT_PROXY');
    assertLeftClean(a);
  });

  it('invalid v1 (port 65536), bad v2 signature, v2 CRC mismatch: PROXY_INVALID with the codec error', async () => {
    const bad = encodeProxyV2({ command: 'proxy', source: { address: '192.0.2.1', port: 1 }, destination: { address: '192.0.2.2', port: 2 }, crc32c: true });
    bad[bad.length - 1] ^= 0xff;
    const cases: [Buffer, string][] = [
      [Buffer.from('PROXY TCP4 192.0.2.1 192.0.2.2 65536 25\r\n'), 'BAD_PORT'],
      [Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]), 'BAD_SIGNATURE'],
      [bad, 'CRC_MISMATCH'],
      [Buffer.from('PROXY UNKNOWN ' + 'x'.repeat(100)), 'TOO_LONG'],
    ];
    for (const [bytes, code] of cases) {
      const { client, server: a } = await pair();
      client.write(bytes);
      const err = await rejectsWith(a.result, 'PROXY_INVALID');
      assert.equal(err.proxyError?.code, code, err.message);
    }
  });

  it('the peer closes mid-header: PROXY_CLOSED', async () => {
    const { client, server: a } = await pair();
    client.end(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a]));
    const err = await rejectsWith(a.result, 'PROXY_CLOSED');
    assert.equal(err.received.length, 4);
  });

  it('the peer resets: PROXY_CLOSED, no unhandled error', async () => {
    const { client, server: a } = await pair();
    client.write('PROX');
    await sleep(20);
    client.resetAndDestroy();
    await rejectsWith(a.result, 'PROXY_CLOSED');
  });

  it('an already-destroyed socket rejects at once', async () => {
    const s = new net.Socket();
    s.destroy();
    await rejectsWith(readProxyHeader(s, 1000), 'PROXY_CLOSED');
  });
});
