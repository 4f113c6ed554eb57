import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  PP2_TYPE,
  ProxyProtocolError,
  encodeProxyV1,
  encodeProxyV2,
  parseProxyHeader,
  type ParseResult,
  type ProxyEndpoint,
  type V2EncodeInput,
} from '../../src/proxy/index.js';
import { formatIPv6, isUnspecified, parseIPv6 } from '../../src/proxy/ip.js';

// --- helpers ---

/** WHATWG URL host serialisation: an independent RFC 5952-style IPv6 normaliser (no mixed notation). */
function urlNormal(v6: string): string {
  return new URL(`http://[${v6}]/`).hostname.slice(1, -1);
}

function isMappedText(a: string): boolean {
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(a);
}

type Outcome = { kind: 'incomplete' } | { kind: 'header'; length: number; json: string } | { kind: 'error'; code: string };

/** Runs the parser and insists it only ever throws ProxyProtocolError. */
function outcome(buf: Uint8Array): Outcome {
  let r: ParseResult;
  try {
    r = parseProxyHeader(buf);
  } catch (e) {
    if (!(e instanceof ProxyProtocolError)) throw new Error(`non-ProxyProtocolError thrown: ${String(e)}`);
    assert.equal(typeof e.code, 'string');
    return { kind: 'error', code: e.code };
  }
  if (r.kind === 'incomplete') return r;
  assert.ok(Number.isInteger(r.length) && r.length > 0 && r.length <= buf.length, 'length within input');
  return { kind: 'header', length: r.length, json: stableJson(r.header) };
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (Buffer.isBuffer(x) ? x.toString('hex') : x));
}

/**
 * The incremental contract on any input: a prefix that is a header stays that header when
 * more bytes follow; a prefix that fails keeps failing; before a header of length L, every
 * shorter prefix is 'incomplete'.
 */
function checkIncremental(buf: Uint8Array): void {
  const all = outcome(buf);
  let failedAt = -1;
  for (let i = 0; i <= buf.length; i++) {
    const o = i === buf.length ? all : outcome(buf.subarray(0, i));
    if (o.kind === 'error' && failedAt < 0) failedAt = i;
    if (failedAt >= 0) assert.equal(o.kind, 'error', `prefix ${i} after failure at ${failedAt}`);
    if (o.kind === 'header') {
      assert.equal(o.length, i, 'a header is recognised exactly when its last byte arrives');
      assert.deepEqual(all, o, 'later bytes do not change the header');
      return;
    }
  }
}

// --- arbitraries ---

const port = fc.integer({ min: 0, max: 65535 });
const ep4 = fc.record({ address: fc.ipV4(), port });
const ep6 = fc.record({ address: fc.ipV6(), port });
const ep = fc.oneof(ep4, ep6);
// A PROXY header's source is a real client: never the unspecified address, never port 0
// (the parser refuses those; see the UNSPECIFIED_SOURCE tests).
const srcPort = fc.integer({ min: 1, max: 65535 });
const src4 = fc.record({ address: fc.ipV4().filter((a) => a !== '0.0.0.0'), port: srcPort });
const src6 = fc.record({ address: fc.ipV6().filter((a) => !isUnspecified(formatIPv6(parseIPv6(a)!))), port: srcPort });
const src = fc.oneof(src4, src6);
const ascii = fc.stringMatching(/^[\x20-\x7e]{0,24}$/);
const extraTlv = fc.record({
  // Types the encoder passes through untouched: NOOP, NETNS, unassigned, custom, experimental, future.
  type: fc.oneof(fc.constant(PP2_TYPE.NOOP), fc.constant(PP2_TYPE.NETNS), fc.integer({ min: 0x06, max: 0x1f }), fc.integer({ min: 0xe0, max: 0xff })),
  value: fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
}).map(({ type, value }) => ({ type, value })); // plain prototype, for deepEqual

const v2Input: fc.Arbitrary<V2EncodeInput> = fc.record(
  {
    command: fc.constantFrom('local' as const, 'proxy' as const),
    source: src,
    destination: ep,
    authority: fc.string({ unit: 'grapheme', maxLength: 40 }),
    uniqueId: fc.uint8Array({ maxLength: 128 }).map((u) => Buffer.from(u)),
    alpn: fc.uint8Array({ maxLength: 16 }).map((u) => Buffer.from(u)),
    ssl: fc.record(
      {
        client: fc.integer({ min: 0, max: 255 }),
        verify: fc.integer({ min: 0, max: 0xffffffff }),
        version: ascii,
        cipher: ascii,
        cn: fc.string({ unit: 'grapheme', maxLength: 30 }),
      },
      { requiredKeys: ['client', 'verify'] },
    ),
    tlvs: fc.array(extraTlv, { maxLength: 5 }),
    crc32c: fc.boolean(),
  },
  { requiredKeys: ['command'] },
).filter((h) => (h.source === undefined) === (h.destination === undefined));

const v1Input = fc.oneof(
  fc.record({ family: fc.constant('tcp4' as const), source: src4, destination: ep4 }),
  fc.record({ family: fc.constant('tcp6' as const), source: src6, destination: ep6 }),
  fc.constant({ family: 'unknown' as const }),
);

function sameAddress(got: ProxyEndpoint | null, want: ProxyEndpoint): void {
  assert.ok(got);
  assert.equal(got.port, want.port);
  if (want.address.includes(':')) {
    assert.ok(isIPv6(got.address));
    assert.equal(got.address, got.address.toLowerCase());
    assert.equal(urlNormal(got.address), urlNormal(want.address));
  } else if (got.address.includes(':')) {
    assert.equal(got.address, `::ffff:${want.address}`, 'IPv4 endpoint v4-mapped');
  } else {
    assert.equal(got.address, want.address);
  }
}

// --- properties ---

describe('PROXY properties: IPv6 text', () => {
  it('parses every generated IPv6 form and formats it canonically', () => {
    fc.assert(
      fc.property(fc.ipV6(), (a) => {
        const bytes = parseIPv6(a);
        assert.ok(bytes, a);
        const text = formatIPv6(bytes);
        assert.deepEqual(parseIPv6(text), bytes);
        assert.equal(formatIPv6(parseIPv6(text) as Uint8Array), text, 'idempotent');
        if (!isMappedText(text)) assert.equal(text, urlNormal(a));
      }),
      { numRuns: 1000 },
    );
  });

  it('formats random 16-byte addresses like the URL serialiser (RFC 5952 §4)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 16, maxLength: 16 }),
        fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 8 }),
        (raw, zeroGroups) => {
          const b = Uint8Array.from(raw);
          for (const g of zeroGroups) b.fill(0, 2 * g, 2 * g + 2); // make zero runs common
          const text = formatIPv6(b);
          if (isMappedText(text)) return;
          assert.equal(text, urlNormal(text));
          assert.deepEqual(parseIPv6(text), b);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('uses RFC 5952 text for known cases', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['::ffff:c000:0201', '::ffff:192.0.2.1'],
      ['::c000:0201', '::c000:201'],
      ['ABCD:EF01::', 'abcd:ef01::'],
    ];
    for (const [input, want] of cases) assert.equal(formatIPv6(parseIPv6(input) as Uint8Array), want, input);
  });
});

describe('PROXY properties: round trips', () => {
  it('v1: encode -> parse gives the same endpoints and length, with any trailing bytes', () => {
    fc.assert(
      fc.property(v1Input, fc.uint8Array({ maxLength: 64 }), (h, tail) => {
        const buf = encodeProxyV1(h);
        assert.ok(buf.length <= 107);
        for (const input of [buf, Buffer.concat([buf, tail])]) {
          const r = parseProxyHeader(input);
          assert.equal(r.kind, 'header');
          assert.equal(r.length, buf.length);
          assert.equal(r.header.version, 1);
          assert.equal(r.header.family, h.family);
          if (h.family === 'unknown') {
            assert.equal(r.header.source, null);
          } else {
            sameAddress(r.header.source, h.source);
            sameAddress(r.header.destination, h.destination);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('v2: encode -> parse reproduces every field, with any trailing bytes', () => {
    fc.assert(
      fc.property(v2Input, fc.uint8Array({ maxLength: 64 }), (h, tail) => {
        const buf = encodeProxyV2(h);
        for (const input of [buf, Buffer.concat([buf, tail])]) {
          const r = parseProxyHeader(input, { maxV2Length: 65535 });
          assert.equal(r.kind, 'header');
          assert.equal(r.length, buf.length);
          const p = r.header;
          assert.equal(p.version, 2);
          assert.equal(p.command, h.command);
          if (h.command === 'local' || h.source === undefined || h.destination === undefined) {
            assert.equal(p.source, null);
            assert.equal(p.destination, null);
            assert.equal(p.family, 'unspec');
          } else {
            const both4 = !h.source.address.includes(':') && !h.destination.address.includes(':');
            assert.equal(p.family, both4 ? 'tcp4' : 'tcp6');
            assert.equal(p.transport, 'stream');
            sameAddress(p.source, h.source);
            sameAddress(p.destination, h.destination);
          }
          assert.equal(p.authority, h.authority);
          assert.deepEqual(p.uniqueId, h.uniqueId);
          assert.deepEqual(p.alpn, h.alpn);
          if (h.ssl === undefined) assert.equal(p.ssl, undefined);
          else {
            assert.equal(p.ssl?.client, h.ssl.client);
            assert.equal(p.ssl?.verify, h.ssl.verify);
            assert.equal(p.ssl?.version, h.ssl.version);
            assert.equal(p.ssl?.cipher, h.ssl.cipher);
            assert.equal(p.ssl?.cn, h.ssl.cn);
          }
          assert.equal(p.crc32cChecked, h.crc32c === true ? true : undefined);
          const named: number[] = [PP2_TYPE.ALPN, PP2_TYPE.AUTHORITY, PP2_TYPE.CRC32C, PP2_TYPE.UNIQUE_ID, PP2_TYPE.SSL];
          const extras = p.tlvs.filter((t) => !named.includes(t.type));
          assert.deepEqual(extras, h.tlvs ?? []);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('byte-by-byte delivery yields incomplete until the last byte (v1 and v2)', () => {
    fc.assert(
      fc.property(fc.oneof(v1Input.map((h) => encodeProxyV1(h)), v2Input.map((h) => encodeProxyV2(h))), fc.uint8Array({ maxLength: 8 }), (buf, tail) => {
        for (let i = 0; i < buf.length; i++) {
          assert.equal(parseProxyHeader(buf.subarray(0, i), { maxV2Length: 65535 }).kind, 'incomplete', `at ${i}/${buf.length}`);
        }
        const r = parseProxyHeader(Buffer.concat([buf, tail]), { maxV2Length: 65535 });
        assert.equal(r.kind === 'header' && r.length, buf.length);
      }),
      { numRuns: 200 },
    );
  });
});

describe('PROXY properties: hostile input', () => {
  const validHeader = fc.oneof(v1Input.map((h) => encodeProxyV1(h)), v2Input.map((h) => encodeProxyV2(h)));

  /** Valid headers with a few bytes flipped, replaced, cut or inserted: the interesting space. */
  const mutated = fc
    .tuple(
      validHeader,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'xor', 'cut', 'insert')), { minLength: 1, maxLength: 4 }),
      fc.uint8Array({ maxLength: 32 }),
    )
    .map(([buf, edits, tail]) => {
      let b = Buffer.concat([buf, tail]);
      for (const [pos, val, op] of edits) {
        const i = pos % Math.max(1, b.length);
        if (op === 'set') b[i] = val;
        else if (op === 'xor') b[i] ^= val || 1;
        else if (op === 'cut') b = b.subarray(0, i);
        else b = Buffer.concat([b.subarray(0, i), Buffer.from([val]), b.subarray(i)]);
      }
      return b;
    });

  const v1ish = fc
    .array(
      fc.oneof(
        fc.constantFrom('TCP4', 'TCP6', 'UNKNOWN', ' ', '  ', '\r', '\n', '\r\n', '.', ':', '::', '0', '00', '255', '256', '65535', '65536', 'ffff', '%', '+'),
        fc.ipV4(),
        fc.ipV6(),
        fc.nat(99999).map(String),
      ),
      { maxLength: 14 },
    )
    .map((parts) => Buffer.from(`PROXY ${parts.join('')}`, 'latin1'));

  const v2ish = fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 300 }), fc.uint8Array({ maxLength: 300 }))
    .map(([vc, fam, len, body]) => {
      const h = Buffer.from('0d0a0d0a000d0a515549540a00000000', 'hex');
      h[12] = vc & 0x0f ? 0x20 | (vc & 1) : vc; // mostly valid version/command
      h[13] = fam;
      h.writeUInt16BE(len, 14);
      return Buffer.concat([h, body]);
    });

  it('random bytes only ever yield incomplete, a header, or ProxyProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (buf) => {
        outcome(buf);
      }),
      { numRuns: 3000 },
    );
  });

  it('mutated valid headers obey the incremental contract', () => {
    fc.assert(fc.property(mutated, (buf) => checkIncremental(buf)), { numRuns: 1000 });
  });

  it('v1-shaped and v2-shaped noise obeys the incremental contract', () => {
    fc.assert(fc.property(fc.oneof(v1ish, v2ish), (buf) => checkIncremental(buf)), { numRuns: 1500 });
  });

  it('returns promptly, also on megabyte inputs', () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 0x41);
    const inputs = [
      Buffer.concat([Buffer.from('PROXY UNKNOWN '), big]),
      Buffer.concat([Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), big]),
      Buffer.concat([encodeProxyV2({ command: 'proxy', source: { address: '1.2.3.4', port: 1 }, destination: { address: '5.6.7.8', port: 2 } }), big]),
      Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a2111ffff', 'hex'), big]),
      Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a2111ffff', 'hex'), Buffer.alloc(65535)]),
    ];
    for (const buf of inputs) {
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < 100; k++) {
        try {
          parseProxyHeader(buf);
        } catch (e) {
          assert.ok(e instanceof ProxyProtocolError);
        }
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      assert.ok(ms < 500, `100 parses took ${ms} ms`);
    }
    // A maximal v2 header full of 0-length TLVs (21845 of them) with the limit lifted.
    const tlvs = Buffer.alloc(65535 - 12 - 3 * 21840);
    const many = Buffer.concat([
      Buffer.from('0d0a0d0a000d0a515549540a2111ffff', 'hex'),
      Buffer.from('7f0000017f00000104000019', 'hex'),
      Buffer.concat(Array.from({ length: 21840 }, () => Buffer.from([0x04, 0, 0]))),
    ]);
    const padded = Buffer.concat([many, Buffer.from([0xe0, (tlvs.length - 3) >> 8, (tlvs.length - 3) & 0xff]), tlvs.subarray(3)]);
    const t0 = process.hrtime.bigint();
    const r = parseProxyHeader(padded, { maxV2Length: 65535 });
    assert.equal(r.kind === 'header' && r.length, 65535 + 16);
    assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 500);
  });
});
