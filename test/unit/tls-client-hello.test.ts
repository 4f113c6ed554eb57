// Reading SNI from a real ClientHello however it is cut into records and segments; non-TLS gives up at once.
import assert from 'node:assert/strict';
import { constants } from 'node:crypto';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { duplexPair } from '../../src/tls/duplex-pair.js';
import { parseClientHello } from '../../src/tls/client-hello.js';
import { sessionProtocol } from '../../src/tls/session-cache.js';

/** The first flight of a Node client, captured from an in-memory pipe. */
function clientHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  const [mine, theirs] = duplexPair();
  const c = tls.connect({ socket: mine, rejectUnauthorized: false, ...opts });
  c.on('error', () => undefined);
  return new Promise((resolve) =>
    theirs.once('data', (d: Buffer) => {
      c.destroy();
      resolve(d);
    }),
  );
}

/** The same handshake message re-framed into records of at most `n` bytes. */
function reframe(hello: Buffer, n: number): Buffer {
  const msg = hello.subarray(5);
  const out: Buffer[] = [];
  for (let i = 0; i < msg.length; i += n) {
    const part = msg.subarray(i, i + n);
    out.push(Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]), part);
  }
  return Buffer.concat(out);
}

describe('ClientHello peek', () => {
  it('finds the server name, whatever the record and segment boundaries', async () => {
    const hello = await clientHello({ servername: 'Mail.Example.ORG' });
    const want = { state: 'done', servername: 'mail.example.org', tls13: true, ticket: true, alpn: [] };
    assert.deepEqual(parseClientHello(hello), want);
    for (const framed of [hello, reframe(hello, 100), reframe(hello, 3)]) {
      for (let i = 1; i < framed.length; i++) assert.deepEqual(parseClientHello(framed.subarray(0, i)), { state: 'more' }, `cut at ${i}`);
      assert.deepEqual(parseClientHello(framed), want);
    }
  });

  it('tells whether TLS 1.3 is offered', async () => {
    assert.equal((parseClientHello(await clientHello({ maxVersion: 'TLSv1.2' })) as { tls13: boolean }).tls13, false);
    assert.equal((parseClientHello(await clientHello({ minVersion: 'TLSv1.3' })) as { tls13: boolean }).tls13, true);
  });

  it('tells whether the client takes session tickets (the SessionTicket extension, empty or not)', async () => {
    const ticket = (h: Buffer) => (parseClientHello(h) as { ticket: boolean }).ticket;
    assert.equal(ticket(await clientHello({ maxVersion: 'TLSv1.2' })), true);
    const noTicket = tls.createSecureContext({ maxVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_TICKET });
    assert.equal(ticket(await clientHello({ secureContext: noTicket })), false, 'a client with SSL_OP_NO_TICKET sends no SessionTicket extension');
  });

  it('lists the ALPN protocols offered (an ACME validator offers acme-tls/1, RFC 8737 3)', async () => {
    const alpn = (h: Buffer) => (parseClientHello(h) as { alpn: string[] }).alpn;
    assert.deepEqual(alpn(await clientHello({ servername: 'mx.example.org', ALPNProtocols: ['acme-tls/1'] })), ['acme-tls/1']);
    assert.deepEqual(alpn(await clientHello({ ALPNProtocols: ['h2', 'http/1.1', 'smtp'] })), ['h2', 'http/1.1', 'smtp']);
    const cut = await clientHello({ servername: 'mx.example.org', ALPNProtocols: ['acme-tls/1'] });
    for (const framed of [reframe(cut, 7)]) assert.deepEqual(alpn(framed), ['acme-tls/1'], 'whatever the record boundaries');
  });

  it('no SNI, or not TLS at all: done with no name', async () => {
    const hello = await clientHello({});
    assert.deepEqual(parseClientHello(hello), { state: 'done', servername: null, tls13: true, ticket: true, alpn: [] });
    assert.deepEqual(parseClientHello(Buffer.from('EHLO x\r\n')), { state: 'done', servername: null, tls13: false, ticket: false, alpn: [] });
    assert.deepEqual(parseClientHello(Buffer.from('GE')), { state: 'more' }, 'too short to tell');
    assert.deepEqual(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0, 0, 0])), { state: 'done', servername: null, tls13: false, ticket: false, alpn: [] }, 'not a ClientHello');
    const huge = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff]), Buffer.alloc(70_000)]);
    assert.equal(parseClientHello(huge).state, 'done');
  });
});

describe('session protocol from SSL_SESSION DER', () => {
  it('tells TLS 1.3 sessions from TLS 1.2 ones', async () => {
    const { makePki } = await import('../helpers/certs.js');
    const pki = await makePki();
    try {
      const leaf = await pki.leaf('sp', 'ecdsa', ['sp.example']);
      const ctx = tls.createSecureContext({ key: leaf.keyPem, cert: leaf.certPem, sessionIdContext: 'sp' });
      const versions: (number | null)[] = [];
      for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
        const [a, b] = duplexPair();
        const s = new tls.TLSSocket(a, { isServer: true, secureContext: ctx });
        s.on('error', () => undefined);
        const c = tls.connect({ socket: b, rejectUnauthorized: false, maxVersion: v, minVersion: v });
        const session = await new Promise<Buffer>((resolve) => c.once('session', resolve));
        versions.push(sessionProtocol(session));
        c.destroy();
        s.destroy();
      }
      assert.deepEqual(versions, [0x0303, 0x0304]);
      assert.equal(sessionProtocol(Buffer.from('junk')), null);
    } finally {
      await pki.cleanup();
    }
  });
});
