import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  PP2_CLIENT,
  PP2_TYPE,
  ProxyProtocolError,
  encodeProxyV2,
  parseProxyHeader,
  type ParseResult,
  type ProxyErrorCode,
  type ProxyHeader,
} from '../../src/proxy/index.js';

// --- builders (independent of the encoder under test) ---

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** 16-byte fixed part + body; `len` defaults to the body's length. */
function v2(verCmd: number, fam: number, body: Buffer, len?: number): Buffer {
  const h = Buffer.alloc(16);
  SIG.copy(h);
  h[12] = verCmd;
  h[13] = fam;
  h.writeUInt16BE(len ?? body.length, 14);
  return Buffer.concat([h, body]);
}

function tlv(type: number, value: Buffer | string | number[]): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  const h = Buffer.alloc(3);
  h[0] = type;
  h.writeUInt16BE(v.length, 1);
  return Buffer.concat([h, v]);
}

function inet4(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  b.set(src, 0);
  b.set(dst, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

function ssl(client: number, verify: number, subs: Buffer[]): Buffer {
  const head = Buffer.alloc(5);
  head[0] = client;
  head.writeUInt32BE(verify, 1);
  return tlv(PP2_TYPE.SSL, Buffer.concat([head, ...subs]));
}

/** Bit-by-bit CRC32C, so CRC tests do not trust the module's table. */
function slowCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (crc & 1 ? 0x82f63b78 : 0);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** Fills the (zeroed) 4-byte CRC32C value at `at` the way §2.2.3 describes. */
function withCrc(header: Buffer, at: number): Buffer {
  const out = Buffer.from(header);
  out.fill(0, at, at + 4);
  out.writeUInt32BE(slowCrc32c(out), at);
  return out;
}

const LOCALHOST = [127, 0, 0, 1];

function header(buf: Buffer, opts?: { maxV2Length?: number }): { header: ProxyHeader; length: number } {
  const r = parseProxyHeader(buf, opts);
  assert.equal(r.kind, 'header', 'expected a complete header');
  return r;
}

function codeOf(input: Uint8Array, opts?: { maxV2Length?: number }): ProxyErrorCode | ParseResult['kind'] {
  try {
    return parseProxyHeader(input, opts).kind;
  } catch (e) {
    assert.ok(e instanceof ProxyProtocolError, `unexpected ${String(e)}`);
    return e.code;
  }
}

function assertPrefixesIncomplete(full: Buffer): void {
  for (let i = 0; i < full.length; i++) {
    assert.equal(codeOf(full.subarray(0, i)), 'incomplete', `prefix of ${i}/${full.length} bytes`);
  }
}

// --- valid headers ---

describe('PROXY v2: valid headers', () => {
  it('parses TCP4 with an AUTHORITY TLV and reports length 16+len', () => {
    const buf = v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 42, 1337), tlv(0x02, '12345')]));
    assert.equal(buf[15], 0x14);
    const r = header(buf);
    assert.equal(r.length, 36);
    assert.deepEqual(r.header, {
      version: 2,
      command: 'proxy',
      family: 'tcp4',
      transport: 'stream',
      source: { address: '127.0.0.1', port: 42 },
      destination: { address: '127.0.0.1', port: 1337 },
      tlvs: [{ type: 2, value: Buffer.from('12345') }],
      authority: '12345',
    });
  });

  it('leaves bytes after 16+len to the application, even when they look like TLVs', () => {
    const hdr = v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 42, 1337), tlv(0x02, '12345')]));
    for (const tail of [tlv(0x02, 'evil'), Buffer.from('EHLO x\r\n'), Buffer.from([0]), SIG]) {
      const r = header(Buffer.concat([hdr, tail]));
      assert.equal(r.length, hdr.length);
      assert.equal(r.header.authority, '12345');
      assert.equal(r.header.tlvs.length, 1);
    }
  });

  it('parses TCP6 and formats addresses canonically', () => {
    const body = Buffer.alloc(36);
    Buffer.from('20010db8000000000000000000000001', 'hex').copy(body, 0);
    Buffer.from('00000000000000000000ffffc0000201', 'hex').copy(body, 16);
    body.writeUInt16BE(65535, 32);
    body.writeUInt16BE(25, 34);
    const r = header(v2(0x21, 0x21, body));
    assert.equal(r.header.family, 'tcp6');
    assert.deepEqual(r.header.source, { address: '2001:db8::1', port: 65535 });
    assert.deepEqual(r.header.destination, { address: '::ffff:192.0.2.1', port: 25 });
  });

  it('reports UDP (0x12) as transport dgram', () => {
    const r = header(v2(0x21, 0x12, inet4([10, 0, 0, 1], [10, 0, 0, 2], 53, 53)));
    assert.equal(r.header.family, 'tcp4');
    assert.equal(r.header.transport, 'dgram');
  });

  it('parses UNIX (0x31) paths up to the first NUL, port 0', () => {
    const body = Buffer.alloc(216);
    body.write('/run/src.sock', 0);
    body.write('/run/dst.sock', 108);
    const r = header(v2(0x21, 0x31, body));
    assert.equal(r.header.family, 'unix');
    assert.deepEqual(r.header.source, { address: '/run/src.sock', port: 0 });
    assert.deepEqual(r.header.destination, { address: '/run/dst.sock', port: 0 });
  });

  it('rejects a UNIX path that is not UTF-8', () => {
    const body = Buffer.alloc(216);
    body[0] = 0xff;
    assert.equal(codeOf(v2(0x21, 0x31, body)), 'BAD_ADDRESS');
  });

  it('accepts LOCAL with no body, addresses null', () => {
    const r = header(v2(0x20, 0x00, Buffer.alloc(0)));
    assert.equal(r.length, 16);
    assert.equal(r.header.command, 'local');
    assert.equal(r.header.source, null);
    assert.equal(r.header.destination, null);
  });

  it('accepts LOCAL with an address block, skipping it and still reading TLVs', () => {
    const body = Buffer.concat([inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), tlv(0x05, 'id-1')]);
    const r = header(v2(0x20, 0x11, body));
    assert.equal(r.length, 16 + body.length);
    assert.equal(r.header.command, 'local');
    assert.equal(r.header.family, 'tcp4');
    assert.equal(r.header.source, null);
    assert.deepEqual(r.header.uniqueId, Buffer.from('id-1'));
  });

  it('accepts LOCAL with family INET but len 0 (no address block present)', () => {
    const r = header(v2(0x20, 0x11, Buffer.alloc(0)));
    assert.equal(r.length, 16);
    assert.equal(r.header.source, null);
  });

  it('accepts LOCAL with TLVs only', () => {
    const r = header(v2(0x20, 0x00, Buffer.concat([tlv(0x04, []), tlv(0xe0, 'x')])));
    assert.deepEqual(
      r.header.tlvs.map((t) => t.type),
      [0x04, 0xe0],
    );
  });

  it('accepts PROXY with family UNSPEC (no addresses)', () => {
    const r = header(v2(0x21, 0x00, Buffer.alloc(0)));
    assert.equal(r.header.command, 'proxy');
    assert.equal(r.header.family, 'unspec');
    assert.equal(r.header.transport, 'unspec');
    assert.equal(r.header.source, null);
  });

  it('accepts every valid family/transport nibble pair', () => {
    for (let fam = 0; fam <= 3; fam++) {
      for (let tr = 0; tr <= 2; tr++) {
        // Not zeros: a PROXY source of 0.0.0.0 / :: / port 0 is refused (UNSPECIFIED_SOURCE).
        const body = Buffer.alloc([0, 12, 36, 216][fam], 1);
        assert.equal(codeOf(v2(0x21, (fam << 4) | tr, body)), 'header', `0x${fam}${tr}`);
      }
    }
  });

  it('keeps unknown, custom, NOOP and NETNS TLVs in order, including empty ones', () => {
    const body = Buffer.concat([
      inet4(LOCALHOST, LOCALHOST, 1, 2),
      tlv(0xea, 'vpce-0123'),
      tlv(0x04, [0, 0, 0]),
      tlv(0xe0, []),
      tlv(0x30, 'ns1'),
      tlv(0xff, [1, 2, 3]),
    ]);
    const r = header(v2(0x21, 0x11, body));
    assert.deepEqual(r.header.tlvs, [
      { type: 0xea, value: Buffer.from('vpce-0123') },
      { type: 0x04, value: Buffer.from([0, 0, 0]) },
      { type: 0xe0, value: Buffer.alloc(0) },
      { type: 0x30, value: Buffer.from('ns1') },
      { type: 0xff, value: Buffer.from([1, 2, 3]) },
    ]);
  });

  it('copies TLV values, so they survive the caller reusing its buffer', () => {
    const buf = v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0x05, 'abc')]));
    const r = header(buf);
    buf.fill(0);
    assert.deepEqual(r.header.uniqueId, Buffer.from('abc'));
  });

  it('parses ALPN and a multibyte UTF-8 AUTHORITY', () => {
    const body = Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0x01, 'smtp'), tlv(0x02, 'mx.bücher.example')]);
    const r = header(v2(0x21, 0x11, body));
    assert.deepEqual(r.header.alpn, Buffer.from('smtp'));
    assert.equal(r.header.authority, 'mx.bücher.example');
  });

  it('accepts a 2 KB TLV block', () => {
    const body = Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0xe1, Buffer.alloc(2048, 0x41))]);
    const r = header(v2(0x21, 0x11, body));
    assert.equal(r.header.tlvs[0]?.value.length, 2048);
  });

  it('accepts len 4096 by default and rejects 4097', () => {
    const ok = v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0xe1, Buffer.alloc(4096 - 15))]));
    assert.equal(ok.readUInt16BE(14), 4096);
    assert.equal(header(ok).length, 4112);
    const bad = v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0xe1, Buffer.alloc(4096 - 14))]));
    assert.equal(bad.readUInt16BE(14), 4097);
    assert.equal(codeOf(bad), 'TOO_LONG');
    // Known from the 16 fixed bytes alone.
    assert.equal(codeOf(bad.subarray(0, 16)), 'TOO_LONG');
    assert.equal(codeOf(bad.subarray(0, 15)), 'incomplete');
  });

  it('honours maxV2Length', () => {
    const buf = v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0xe1, Buffer.alloc(100))]));
    assert.equal(codeOf(buf, { maxV2Length: 114 }), 'TOO_LONG');
    assert.equal(codeOf(buf, { maxV2Length: 115 }), 'header');
    assert.equal(codeOf(buf, { maxV2Length: 65535 }), 'header');
  });
});

describe('PROXY v2: UNIQUE_ID', () => {
  for (const n of [0, 1, 128]) {
    it(`accepts ${n} bytes`, () => {
      const id = Buffer.alloc(n, 0x61);
      const r = header(v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0x05, id)])));
      assert.deepEqual(r.header.uniqueId, id);
    });
  }
  it('rejects 129 bytes, as soon as the TLV header arrives', () => {
    const buf = v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0x05, Buffer.alloc(129))]));
    assert.equal(codeOf(buf), 'UNIQUE_ID_TOO_LONG');
    assert.equal(codeOf(buf.subarray(0, 16 + 12 + 3)), 'UNIQUE_ID_TOO_LONG');
    assert.equal(codeOf(buf.subarray(0, 16 + 12 + 2)), 'incomplete');
  });
});

describe('PROXY v2: CRC32C', () => {
  const base = (crcLen: number, extra: Buffer = Buffer.alloc(0)): Buffer =>
    v2(0x21, 0x11, Buffer.concat([inet4([192, 0, 2, 1], [198, 51, 100, 2], 40000, 25), extra, tlv(0x03, Buffer.alloc(crcLen))]));
  const crcAt = (buf: Buffer): number => buf.length - 4;

  it('verifies a correct checksum (computed by the bitwise reference)', () => {
    const buf = withCrc(base(4, tlv(0x02, 'mx.example')), crcAt(base(4, tlv(0x02, 'mx.example'))));
    const r = header(buf);
    assert.equal(r.header.crc32cChecked, true);
    assert.equal(r.header.tlvs.at(-1)?.type, PP2_TYPE.CRC32C);
    assert.equal(r.header.tlvs.at(-1)?.value.readUInt32BE(0), buf.readUInt32BE(crcAt(buf)));
  });

  it('verifies a checksum placed before other TLVs', () => {
    const body = Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0x03, Buffer.alloc(4)), tlv(0x05, 'uid')]);
    const buf = withCrc(v2(0x21, 0x11, body), 16 + 12 + 3);
    assert.equal(header(buf).header.crc32cChecked, true);
  });

  it('leaves crc32cChecked unset without a CRC32C TLV', () => {
    const r = header(v2(0x21, 0x11, inet4(LOCALHOST, LOCALHOST, 1, 2)));
    assert.equal(r.header.crc32cChecked, undefined);
  });

  it('rejects a mismatch anywhere in the header', () => {
    const good = withCrc(base(4), crcAt(base(4)));
    for (const i of [13, 15, 16, 20, 27, good.length - 1]) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x01;
      const code = codeOf(bad);
      // Flipping a byte of the fixed part may break the structure first.
      assert.ok(code === 'CRC_MISMATCH' || code === 'BAD_FAMILY' || code === 'TLV_OVERRUN', `byte ${i}: ${code}`);
    }
    const bad = Buffer.from(good);
    bad[20] ^= 0x80; // an address byte
    assert.equal(codeOf(bad), 'CRC_MISMATCH');
  });

  it('rejects an all-zero checksum field (as if never filled)', () => {
    assert.equal(codeOf(base(4)), 'CRC_MISMATCH');
  });

  it('rejects a CRC32C TLV of 3 or 5 bytes', () => {
    assert.equal(codeOf(base(3)), 'BAD_TLV');
    assert.equal(codeOf(base(5)), 'BAD_TLV');
  });

  it('rejects two CRC32C TLVs', () => {
    const body = Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), tlv(0x03, Buffer.alloc(4)), tlv(0x03, Buffer.alloc(4))]);
    assert.equal(codeOf(v2(0x21, 0x11, body)), 'BAD_TLV');
  });
});

describe('PROXY v2: SSL TLV', () => {
  it('parses client, verify and sub-TLVs (HAProxy send-proxy-v2-ssl-cn shape)', () => {
    const s = ssl(0x07, 0, [tlv(0x21, 'TLSv1.3'), tlv(0x22, 'client.example'), tlv(0x23, 'TLS_AES_256_GCM_SHA384')]);
    const r = header(v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), s])));
    assert.deepEqual(r.header.ssl, {
      client: PP2_CLIENT.SSL | PP2_CLIENT.CERT_CONN | PP2_CLIENT.CERT_SESS,
      verify: 0,
      version: 'TLSv1.3',
      cn: 'client.example',
      cipher: 'TLS_AES_256_GCM_SHA384',
      subTlvs: [
        { type: 0x21, value: Buffer.from('TLSv1.3') },
        { type: 0x22, value: Buffer.from('client.example') },
        { type: 0x23, value: Buffer.from('TLS_AES_256_GCM_SHA384') },
      ],
    });
    assert.equal(r.header.tlvs[0]?.type, PP2_TYPE.SSL);
  });

  it('parses SIG_ALG, KEY_ALG, a big verify value, and keeps unknown sub-TLVs', () => {
    const s = ssl(0x01, 0xdeadbeef, [tlv(0x24, 'RSA-SHA256'), tlv(0x25, 'RSA2048'), tlv(0x26, 'X25519'), tlv(0x28, [0x30, 0x82])]);
    const r = header(v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), s])));
    assert.equal(r.header.ssl?.verify, 0xdeadbeef);
    assert.equal(r.header.ssl?.sigAlg, 'RSA-SHA256');
    assert.equal(r.header.ssl?.keyAlg, 'RSA2048');
    assert.equal(r.header.ssl?.version, undefined);
    assert.deepEqual(
      r.header.ssl?.subTlvs.map((t) => t.type),
      [0x24, 0x25, 0x26, 0x28],
    );
  });

  it('accepts exactly 5 bytes (no sub-TLVs)', () => {
    const r = header(v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), ssl(0, 1, [])])));
    assert.deepEqual(r.header.ssl, { client: 0, verify: 1, subTlvs: [] });
  });

  const bad: [string, Buffer, ProxyErrorCode][] = [
    ['value under 5 bytes', tlv(0x20, [1, 0, 0, 0]), 'BAD_TLV'],
    ['sub-TLV running past the SSL value', ssl(1, 0, [Buffer.from([0x21, 0x00, 0x09]), Buffer.from('TLSv1.3')]), 'TLV_OVERRUN'],
    ['a stray byte after the last sub-TLV', ssl(1, 0, [tlv(0x21, 'TLSv1.3'), Buffer.from([0x00])]), 'TLV_TRAILING'],
    ['two stray bytes after the sub-TLVs', ssl(1, 0, [tlv(0x21, 'TLSv1.3'), Buffer.from([0x22, 0x00])]), 'TLV_TRAILING'],
    ['non-ASCII cipher', ssl(1, 0, [tlv(0x23, Buffer.from([0x41, 0xc3, 0xa9]))]), 'BAD_TLV'],
    ['control character in version', ssl(1, 0, [tlv(0x21, 'TLS\n1.3')]), 'BAD_TLV'],
    ['invalid UTF-8 in CN', ssl(1, 0, [tlv(0x22, Buffer.from([0x61, 0xc3, 0x28]))]), 'BAD_TLV'],
    ['duplicate VERSION', ssl(1, 0, [tlv(0x21, 'TLSv1.2'), tlv(0x21, 'TLSv1.3')]), 'BAD_TLV'],
    ['duplicate CN', ssl(1, 0, [tlv(0x22, 'a'), tlv(0x22, 'b')]), 'BAD_TLV'],
  ];
  for (const [name, t, code] of bad) {
    it(`rejects ${name} with ${code}`, () => {
      assert.equal(codeOf(v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), t]))), code);
    });
  }

  it('rejects two SSL TLVs', () => {
    const s = ssl(1, 0, [tlv(0x21, 'TLSv1.3')]);
    assert.equal(codeOf(v2(0x21, 0x11, Buffer.concat([inet4(LOCALHOST, LOCALHOST, 1, 2), s, s]))), 'BAD_TLV');
  });
});

// --- malformed headers ---

const ADDR = inet4(LOCALHOST, LOCALHOST, 42, 1337);

const MALFORMED: [string, Buffer, ProxyErrorCode, number?][] = [
  // [name, input, code, shortest prefix length that must already fail]
  ['version nibble 1', v2(0x11, 0x11, ADDR), 'BAD_VERSION', 13],
  ['version nibble 3', v2(0x31, 0x11, ADDR), 'BAD_VERSION', 13],
  ['version nibble 0', v2(0x01, 0x11, ADDR), 'BAD_VERSION', 13],
  ['command 2', v2(0x22, 0x11, ADDR), 'BAD_COMMAND', 13],
  ['command 0xF', v2(0x2f, 0x11, ADDR), 'BAD_COMMAND', 13],
  ['family 0x13 (transport 3)', v2(0x21, 0x13, ADDR), 'BAD_FAMILY', 14],
  ['family 0x41 (family 4)', v2(0x21, 0x41, ADDR), 'BAD_FAMILY', 14],
  ['family 0xF1', v2(0x21, 0xf1, ADDR), 'BAD_FAMILY', 14],
  ['family 0x03 on LOCAL too', v2(0x20, 0x03, Buffer.alloc(0)), 'BAD_FAMILY', 14],
  ['PROXY INET, len 11', v2(0x21, 0x11, ADDR.subarray(0, 11)), 'BAD_LENGTH', 16],
  ['PROXY INET, len 0 followed by an address block', Buffer.concat([v2(0x21, 0x11, Buffer.alloc(0)), ADDR]), 'BAD_LENGTH', 16],
  ['PROXY INET6, len 35', v2(0x21, 0x21, Buffer.alloc(35)), 'BAD_LENGTH', 16],
  ['PROXY INET6 with only an INET block (len 12)', v2(0x21, 0x21, ADDR), 'BAD_LENGTH', 16],
  ['PROXY UNIX, len 215', v2(0x21, 0x31, Buffer.alloc(215)), 'BAD_LENGTH', 16],
  ['len 4097', v2(0x21, 0x11, Buffer.alloc(4097)), 'TOO_LONG', 16],
  ['len 0xFFFF', v2(0x21, 0x11, Buffer.alloc(12), 0xffff), 'TOO_LONG', 16],
  ['TLV running past len', v2(0x21, 0x11, Buffer.concat([ADDR, Buffer.from([0x02, 0x00, 0x06]), Buffer.from('12345')])), 'TLV_OVERRUN', 31],
  ['TLV length claims far more than len', v2(0x21, 0x11, Buffer.concat([ADDR, Buffer.from([0xe0, 0xff, 0xff]), Buffer.alloc(20)])), 'TLV_OVERRUN', 31],
  ['stray byte after the last TLV', v2(0x21, 0x11, Buffer.concat([ADDR, tlv(0x02, '12345'), Buffer.from([0x00])])), 'TLV_TRAILING', 31],
  ['two stray bytes after the last TLV', v2(0x21, 0x11, Buffer.concat([ADDR, tlv(0x02, '12345'), Buffer.from([0x04, 0x00])])), 'TLV_TRAILING', 31],
  ['stray byte right after the address block', v2(0x21, 0x11, Buffer.concat([ADDR, Buffer.from([0x00])])), 'TLV_TRAILING', 16],
  ['TLV: type byte only', v2(0x21, 0x11, Buffer.concat([ADDR, Buffer.from([0x04])])), 'TLV_TRAILING', 16],
  ['TLV: type and one length byte', v2(0x21, 0x11, Buffer.concat([ADDR, Buffer.from([0x04, 0x00])])), 'TLV_TRAILING', 16],
  ['TLV: length 1, no value', v2(0x21, 0x11, Buffer.concat([ADDR, Buffer.from([0x04, 0x00, 0x01])])), 'TLV_OVERRUN', 31],
  ['TLV: length 2, one value byte', v2(0x21, 0x11, Buffer.concat([ADDR, Buffer.from([0x04, 0x00, 0x02, 0x00])])), 'TLV_OVERRUN', 31],
  ['LOCAL: TLV running past len', v2(0x20, 0x00, Buffer.from([0x04, 0x00, 0x05, 0, 0])), 'TLV_OVERRUN', 19],
  ['LOCAL: stray byte', v2(0x20, 0x00, Buffer.from([0x00])), 'TLV_TRAILING', 16],
  ['LOCAL INET with a short non-TLV body', v2(0x20, 0x11, Buffer.alloc(5, 0xff)), 'TLV_OVERRUN', 19],
  ['AUTHORITY not UTF-8', v2(0x21, 0x11, Buffer.concat([ADDR, tlv(0x02, [0x6d, 0x78, 0xff])])), 'BAD_TLV'],
  ['AUTHORITY with a UTF-16 surrogate encoded in UTF-8', v2(0x21, 0x11, Buffer.concat([ADDR, tlv(0x02, [0xed, 0xa0, 0x80])])), 'BAD_TLV'],
  ['duplicate AUTHORITY', v2(0x21, 0x11, Buffer.concat([ADDR, tlv(0x02, 'a'), tlv(0x02, 'b')])), 'BAD_TLV'],
  ['duplicate UNIQUE_ID', v2(0x21, 0x11, Buffer.concat([ADDR, tlv(0x05, 'a'), tlv(0x05, 'a')])), 'BAD_TLV'],
  ['duplicate ALPN', v2(0x21, 0x11, Buffer.concat([ADDR, tlv(0x01, 'smtp'), tlv(0x01, 'h2')])), 'BAD_TLV'],
  ['v2 signature then "PROXY"', Buffer.from('\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'latin1'), 'BAD_SIGNATURE', 3],
  ['CRLF CRLF then garbage', Buffer.from('\r\n\r\nHELO\r\n', 'latin1'), 'BAD_SIGNATURE', 5],
  ['signature with NUL replaced by space', Buffer.concat([Buffer.from('\r\n\r\n \r\nQUIT\n'), Buffer.from([0x21, 0x00, 0, 0])]), 'BAD_SIGNATURE', 5],
  ['lone CR', Buffer.from('\rX'), 'BAD_SIGNATURE', 2],
  // Issue 21: PROXY names a real connection; an unspecified source or port 0 is no client.
  // Refused once the address block is in, before the TLVs.
  ['PROXY INET from 0.0.0.0:0', v2(0x21, 0x11, inet4([0, 0, 0, 0], LOCALHOST, 0, 25)), 'UNSPECIFIED_SOURCE', 28],
  ['PROXY INET from 0.0.0.0 with a port', v2(0x21, 0x11, Buffer.concat([inet4([0, 0, 0, 0], LOCALHOST, 40000, 25), tlv(0x05, 'uid')])), 'UNSPECIFIED_SOURCE', 28],
  ['PROXY INET from port 0', v2(0x21, 0x11, inet4([192, 0, 2, 7], LOCALHOST, 0, 25)), 'UNSPECIFIED_SOURCE', 28],
  ['PROXY INET6 from [::]', v2(0x21, 0x21, inet6('00000000000000000000000000000000', 40000)), 'UNSPECIFIED_SOURCE', 52],
  ['PROXY INET6 from [::ffff:0.0.0.0]', v2(0x21, 0x21, inet6('00000000000000000000ffff00000000', 40000)), 'UNSPECIFIED_SOURCE', 52],
  ['PROXY INET6 from port 0', v2(0x21, 0x21, inet6('20010db8000000000000000000000001', 0)), 'UNSPECIFIED_SOURCE', 52],
];

/** An INET6 address block from `src` (hex) and port `sport` to [::1]:25. */
function inet6(src: string, sport: number): Buffer {
  const b = Buffer.alloc(36);
  Buffer.from(src, 'hex').copy(b, 0);
  b[31] = 1;
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(25, 34);
  return b;
}

describe('PROXY v2: malformed headers', () => {
  for (const [name, input, code, early] of MALFORMED) {
    it(`${name} -> ${code}`, () => {
      assert.equal(codeOf(input), code);
      if (early !== undefined) {
        assert.equal(codeOf(input.subarray(0, early)), code, `already at ${early} bytes`);
        assert.equal(codeOf(input.subarray(0, early - 1)), 'incomplete', `not yet at ${early - 1} bytes`);
      }
      let failed = false;
      for (let i = 1; i <= input.length; i++) {
        const r = codeOf(input.subarray(0, i));
        assert.notEqual(r, 'header', `prefix ${i} must not parse`);
        if (failed) assert.notEqual(r, 'incomplete', `prefix ${i} recovered after failing`);
        if (r !== 'incomplete' && !failed) assert.equal(r, code, `same code when fed byte by byte (at ${i})`);
        if (r !== 'incomplete') failed = true;
      }
    });
  }

  it('LOCAL with a zero address block is a header: its addresses are ignored (§2.2), the socket’s are kept', () => {
    const r = header(v2(0x20, 0x11, inet4([0, 0, 0, 0], [0, 0, 0, 0], 0, 0)));
    assert.equal(r.header.command, 'local');
    assert.equal(r.header.source, null);
  });

  it('rejects a corrupted signature at every position', () => {
    const good = v2(0x21, 0x11, ADDR);
    for (let i = 0; i < 12; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x20;
      const code = codeOf(bad);
      if (i === 0) assert.ok(code === 'NOT_PROXY' || code === 'BAD_SIGNATURE', code);
      else {
        assert.equal(code, 'BAD_SIGNATURE', `byte ${i}`);
        assert.equal(codeOf(bad.subarray(0, i + 1)), 'BAD_SIGNATURE', `at once, byte ${i}`);
      }
    }
  });
});

describe('PROXY v2: truncation', () => {
  const withTlvs = v2(
    0x21,
    0x21,
    Buffer.concat([
      Buffer.alloc(36, 0x11),
      tlv(0x01, 'smtp'),
      tlv(0x02, 'mx.example'),
      tlv(0x05, Buffer.alloc(128, 7)),
      ssl(0x07, 0, [tlv(0x21, 'TLSv1.3'), tlv(0x22, 'cn'), tlv(0x23, 'AES')]),
      tlv(0x04, []),
      tlv(0xee, 'azure'),
    ]),
  );
  const crcd = (() => {
    const raw = v2(0x21, 0x11, Buffer.concat([ADDR, tlv(0x02, 'x'), tlv(0x03, [0, 0, 0, 0])]));
    return withCrc(raw, raw.length - 4);
  })();
  const unix = v2(0x21, 0x31, Buffer.concat([Buffer.from('/a'), Buffer.alloc(106), Buffer.from('/b'), Buffer.alloc(106)]));
  const cases: [string, Buffer][] = [
    ['TCP6 with many TLVs', withTlvs],
    ['TCP4 with CRC32C', crcd],
    ['UNIX', unix],
    ['LOCAL', v2(0x20, 0x00, Buffer.alloc(0))],
    ['LOCAL with block and TLV', v2(0x20, 0x11, Buffer.concat([ADDR, tlv(0x04, 'pad')]))],
  ];
  for (const [name, full] of cases) {
    it(`${name}: every strict prefix is incomplete, the whole is a header`, () => {
      assertPrefixesIncomplete(full);
      assert.equal(header(full).length, full.length);
    });
  }
});

describe('PROXY v2: encoder output is parsed back (sanity)', () => {
  it('SSL with version, cipher and CN round-trips', () => {
    const buf = encodeProxyV2({
      command: 'proxy',
      source: { address: '192.0.2.10', port: 50000 },
      destination: { address: '192.0.2.20', port: 465 },
      ssl: { client: PP2_CLIENT.SSL | PP2_CLIENT.CERT_CONN, verify: 0, version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', cn: 'Zoë' },
    });
    const r = header(buf);
    assert.equal(r.header.ssl?.client, 3);
    assert.equal(r.header.ssl?.verify, 0);
    assert.equal(r.header.ssl?.version, 'TLSv1.3');
    assert.equal(r.header.ssl?.cipher, 'TLS_AES_128_GCM_SHA256');
    assert.equal(r.header.ssl?.cn, 'Zoë');
  });
});
