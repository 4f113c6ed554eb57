// Cross-check against proxy-protocol-js (test-only). It has no TLV support and does not
// check lengths or addresses, so only well-formed TCP4/TCP6 PROXY headers without TLVs
// are compared.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { encodeProxyV1, encodeProxyV2, parseProxyHeader, type ProxyHeader } from '../../src/proxy/index.js';
import { formatIPv6, isUnspecified, parseIPv6 } from '../../src/proxy/ip.js';

const port = fc.integer({ min: 0, max: 65535 });
const ep4 = fc.record({ address: fc.ipV4(), port });
const ep6 = fc.record({ address: fc.ipV6(), port });
const bytes4 = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 });
const bytes16 = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 16, maxLength: 16 });
// What Postern parses as a PROXY source: a real client, never the unspecified address or port 0.
const srcPort = fc.integer({ min: 1, max: 65535 });
const src4 = fc.record({ address: fc.ipV4().filter((a) => a !== '0.0.0.0'), port: srcPort });
const src6 = fc.record({ address: fc.ipV6().filter((a) => !isUnspecified(formatIPv6(parseIPv6(a)!))), port: srcPort });
const srcBytes4 = bytes4.filter((b) => b.some((x) => x !== 0));
const srcBytes16 = bytes16.filter((b) => !isUnspecified(formatIPv6(Uint8Array.from(b))));

function ours(buf: Uint8Array): { header: ProxyHeader; length: number } {
  const r = parseProxyHeader(buf);
  assert.equal(r.kind, 'header');
  return r;
}

function canon6(a: string): string {
  const b = parseIPv6(a);
  assert.ok(b, a);
  return formatIPv6(b);
}

describe('cross-check: Postern encodes, proxy-protocol-js parses', () => {
  it('v1 TCP4 and TCP6', () => {
    fc.assert(
      fc.property(fc.oneof(fc.tuple(fc.constant('tcp4' as const), ep4, ep4), fc.tuple(fc.constant('tcp6' as const), ep6, ep6)), ([family, s, d]) => {
        const line = encodeProxyV1({ family, source: s, destination: d }).toString('latin1');
        const theirs = V1ProxyProtocol.parse(line);
        assert.equal(theirs.inetProtocol, family === 'tcp4' ? INETProtocol.TCP4 : INETProtocol.TCP6);
        const norm = (a: string): string => (family === 'tcp6' ? canon6(a) : a);
        assert.equal(theirs.source.ipAddress, norm(s.address));
        assert.equal(theirs.destination.ipAddress, norm(d.address));
        assert.equal(theirs.source.port, s.port);
        assert.equal(theirs.destination.port, d.port);
      }),
      { numRuns: 300 },
    );
  });

  it('v2 TCP4', () => {
    fc.assert(
      fc.property(ep4, ep4, (s, d) => {
        const theirs = V2ProxyProtocol.parse(encodeProxyV2({ command: 'proxy', source: s, destination: d }));
        assert.equal(theirs.command, Command.PROXY);
        assert.equal(theirs.transportProtocol, TransportProtocol.STREAM);
        const a = theirs.proxyAddress;
        assert.ok(a instanceof IPv4ProxyAddress);
        assert.equal(a.sourceAddress.address.join('.'), s.address);
        assert.equal(a.destinationAddress.address.join('.'), d.address);
        assert.equal(a.sourcePort, s.port);
        assert.equal(a.destinationPort, d.port);
        assert.equal(theirs.data?.length, 0, 'no stray bytes after the address block');
      }),
      { numRuns: 300 },
    );
  });

  it('v2 TCP6, including mixed families sent as v4-mapped', () => {
    fc.assert(
      fc.property(fc.oneof(ep6, ep4), ep6, fc.boolean(), (s, d, swap) => {
        const [src, dst] = swap ? [d, s] : [s, d];
        const theirs = V2ProxyProtocol.parse(encodeProxyV2({ command: 'proxy', source: src, destination: dst }));
        const a = theirs.proxyAddress;
        assert.ok(a instanceof IPv6ProxyAddress);
        const text = (x: number[]): string => formatIPv6(Uint8Array.from(x));
        const want = (x: string): string => (x.includes(':') ? canon6(x) : `::ffff:${x}`);
        assert.equal(text(a.sourceAddress.address), want(src.address));
        assert.equal(text(a.destinationAddress.address), want(dst.address));
        assert.equal(a.sourcePort, src.port);
        assert.equal(a.destinationPort, dst.port);
      }),
      { numRuns: 300 },
    );
  });
});

describe('cross-check: proxy-protocol-js builds, Postern parses', () => {
  it('v1 TCP4', () => {
    fc.assert(
      fc.property(src4, ep4, fc.string({ maxLength: 20 }), (s, d, data) => {
        const line = new V1ProxyProtocol(INETProtocol.TCP4, new Peer(s.address, s.port), new Peer(d.address, d.port), data).build();
        const r = ours(Buffer.from(line, 'utf8'));
        assert.equal(r.length, line.length - data.length);
        assert.deepEqual(r.header.source, { ...s });
        assert.deepEqual(r.header.destination, { ...d });
        assert.equal(r.header.family, 'tcp4');
      }),
      { numRuns: 300 },
    );
  });

  it('v1 TCP6 (lines within the 107-byte limit)', () => {
    fc.assert(
      fc.property(src6, ep6, (s, d) => {
        const line = new V1ProxyProtocol(INETProtocol.TCP6, new Peer(s.address, s.port), new Peer(d.address, d.port)).build();
        fc.pre(line.length <= 107);
        const r = ours(Buffer.from(line, 'latin1'));
        assert.equal(r.length, line.length);
        assert.deepEqual(r.header.source, { address: canon6(s.address), port: s.port });
        assert.deepEqual(r.header.destination, { address: canon6(d.address), port: d.port });
      }),
      { numRuns: 300 },
    );
  });

  it('v1 TCP6 lines over 107 bytes are refused by us (they are accepted there)', () => {
    const long = '1111:2222:3333:4444:5555:6666:255.255.255.255';
    const line = new V1ProxyProtocol(INETProtocol.TCP6, new Peer(long, 65535), new Peer(long, 65535)).build();
    assert.ok(line.length > 107);
    assert.doesNotThrow(() => V1ProxyProtocol.parse(line));
    assert.throws(() => parseProxyHeader(Buffer.from(line, 'latin1')), { code: 'TOO_LONG' });
  });

  it('v2 TCP4 and TCP6 PROXY', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.tuple(fc.constant(4 as const), srcBytes4, bytes4),
          fc.tuple(fc.constant(6 as const), srcBytes16, bytes16),
        ),
        srcPort,
        port,
        fc.uint8Array({ maxLength: 16 }),
        ([fam, sb, db], sp, dp, data) => {
          const addr =
            fam === 4
              ? new IPv4ProxyAddress(IPv4Address.createFrom(sb), sp, IPv4Address.createFrom(db), dp)
              : new IPv6ProxyAddress(IPv6Address.createFrom(sb), sp, IPv6Address.createFrom(db), dp);
          const built = new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, addr, data).build();
          const r = ours(built);
          assert.equal(r.length, 16 + (fam === 4 ? 12 : 36), 'their appended data is application bytes');
          const text = (b: number[]): string => (fam === 4 ? b.join('.') : formatIPv6(Uint8Array.from(b)));
          assert.equal(r.header.family, fam === 4 ? 'tcp4' : 'tcp6');
          assert.deepEqual(r.header.source, { address: text(sb), port: sp });
          assert.deepEqual(r.header.destination, { address: text(db), port: dp });
          assert.deepEqual(r.header.tlvs, []);
        },
      ),
      { numRuns: 300 },
    );
  });
});

// Issue 21: a PROXY header naming 0.0.0.0:0 (or ::, or port 0) as the client. proxy-protocol-js
// builds and parses such headers without complaint; Postern refuses them, and takes the same
// addresses under LOCAL, whose address block is ignored (§2.2).
describe('cross-check: an unspecified source, built there, refused here', () => {
  const dst4 = IPv4Address.createFrom([127, 0, 0, 1]);
  const zero4 = IPv4Address.createFrom([0, 0, 0, 0]);
  const zero6 = IPv6Address.createFrom(Array.from({ length: 16 }, () => 0));
  const mapped0 = IPv6Address.createFrom([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
  const one6 = IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  const refused = (buf: Uint8Array, what: string): void => {
    assert.throws(() => parseProxyHeader(buf), { code: 'UNSPECIFIED_SOURCE' }, what);
  };

  it('v2 PROXY: 0.0.0.0:0, 0.0.0.0 with a port, a real address with port 0, ::, ::ffff:0.0.0.0', () => {
    const cases: [IPv4ProxyAddress | IPv6ProxyAddress, string][] = [
      [new IPv4ProxyAddress(zero4, 0, dst4, 25), '0.0.0.0:0'],
      [new IPv4ProxyAddress(zero4, 40000, dst4, 25), '0.0.0.0:40000'],
      [new IPv4ProxyAddress(IPv4Address.createFrom([192, 0, 2, 7]), 0, dst4, 25), '192.0.2.7:0'],
      [new IPv6ProxyAddress(zero6, 40000, one6, 25), '[::]:40000'],
      [new IPv6ProxyAddress(mapped0, 40000, one6, 25), '[::ffff:0.0.0.0]:40000'],
      [new IPv6ProxyAddress(one6, 0, one6, 25), '[2001:db8::1]:0'],
    ];
    for (const [addr, what] of cases) {
      const built = new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, addr).build();
      assert.doesNotThrow(() => V2ProxyProtocol.parse(built), `proxy-protocol-js takes ${what}`);
      refused(built, what);
    }
  });

  it('v2 LOCAL with the same zero block is a header (the socket’s addresses are kept)', () => {
    const built = new V2ProxyProtocol(Command.LOCAL, TransportProtocol.STREAM, new IPv4ProxyAddress(zero4, 0, zero4, 0)).build();
    const r = ours(built);
    assert.equal(r.header.command, 'local');
    assert.equal(r.header.source, null, 'LOCAL carries no client');
  });

  it('v1 TCP4 0.0.0.0 and port 0, TCP6 ::', () => {
    const cases: [INETProtocol, Peer, string][] = [
      [INETProtocol.TCP4, new Peer('0.0.0.0', 0), '0.0.0.0:0'],
      [INETProtocol.TCP4, new Peer('0.0.0.0', 40000), '0.0.0.0:40000'],
      [INETProtocol.TCP4, new Peer('192.0.2.7', 0), '192.0.2.7:0'],
      [INETProtocol.TCP6, new Peer('::', 40000), '[::]:40000'],
      [INETProtocol.TCP6, new Peer('0:0:0:0:0:0:0:0', 40000), '[0:0:0:0:0:0:0:0]:40000'],
    ];
    for (const [proto, src, what] of cases) {
      const dst = proto === INETProtocol.TCP4 ? new Peer('127.0.0.1', 25) : new Peer('::1', 25);
      const line = new V1ProxyProtocol(proto, src, dst).build();
      assert.doesNotThrow(() => V1ProxyProtocol.parse(line), `proxy-protocol-js takes ${what}`);
      refused(Buffer.from(line, 'latin1'), what);
    }
  });
});
