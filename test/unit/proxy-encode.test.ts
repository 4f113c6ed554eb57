import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  PP2_TYPE,
  ProxyProtocolError,
  encodeProxyV1,
  encodeProxyV2,
  parseProxyHeader,
  type ProxyErrorCode,
  type ProxyHeader,
} from '../../src/proxy/index.js';

function throwsCode(fn: () => unknown, code: ProxyErrorCode): void {
  assert.throws(fn, (e: unknown) => e instanceof ProxyProtocolError && e.code === code, `expected ${code}`);
}

function parsed(buf: Buffer): ProxyHeader {
  const r = parseProxyHeader(buf);
  assert.equal(r.kind, 'header');
  assert.equal(r.length, buf.length);
  return r.header;
}

function slowCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (crc & 1 ? 0x82f63b78 : 0);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const SIG_HEX = '0d0a0d0a000d0a515549540a';
const src4 = { address: '192.0.2.1', port: 40000 };
const dst4 = { address: '198.51.100.7', port: 25 };

describe('encodeProxyV1', () => {
  it('writes TCP4 lines exactly', () => {
    assert.equal(
      encodeProxyV1({ family: 'tcp4', source: src4, destination: dst4 }).toString('latin1'),
      'PROXY TCP4 192.0.2.1 198.51.100.7 40000 25\r\n',
    );
  });

  it('writes TCP6 lines with canonical addresses', () => {
    const line = encodeProxyV1({
      family: 'tcp6',
      source: { address: '2001:DB8:0:0:0:0:0:1', port: 0 },
      destination: { address: '::FFFF:192.0.2.1', port: 65535 },
    });
    assert.equal(line.toString('latin1'), 'PROXY TCP6 2001:db8::1 ::ffff:192.0.2.1 0 65535\r\n');
  });

  it('writes UNKNOWN in short form, ignoring endpoints', () => {
    assert.equal(encodeProxyV1({ family: 'unknown' }).toString('latin1'), 'PROXY UNKNOWN\r\n');
    assert.equal(encodeProxyV1({ family: 'unknown', source: src4, destination: dst4 }).toString('latin1'), 'PROXY UNKNOWN\r\n');
  });

  it('refuses what a strict receiver would refuse', () => {
    throwsCode(() => encodeProxyV1({ family: 'tcp4', source: { address: '::1', port: 1 }, destination: dst4 }), 'FAMILY_MISMATCH');
    throwsCode(() => encodeProxyV1({ family: 'tcp4', source: { address: '::ffff:1.2.3.4', port: 1 }, destination: dst4 }), 'FAMILY_MISMATCH');
    throwsCode(() => encodeProxyV1({ family: 'tcp6', source: src4, destination: { address: '::1', port: 1 } }), 'FAMILY_MISMATCH');
    throwsCode(() => encodeProxyV1({ family: 'tcp4', source: { address: '01.2.3.4', port: 1 }, destination: dst4 }), 'BAD_ADDRESS');
    throwsCode(() => encodeProxyV1({ family: 'tcp4', source: { address: 'mx.example', port: 1 }, destination: dst4 }), 'BAD_ADDRESS');
    throwsCode(() => encodeProxyV1({ family: 'tcp6', source: { address: 'fe80::1%eth0', port: 1 }, destination: { address: '::1', port: 1 } }), 'BAD_ADDRESS');
    throwsCode(() => encodeProxyV1({ family: 'tcp4', source: src4 }), 'BAD_ADDRESS');
    for (const port of [65536, -1, 1.5, Number.NaN]) {
      throwsCode(() => encodeProxyV1({ family: 'tcp4', source: { ...src4, port }, destination: dst4 }), 'BAD_PORT');
    }
  });

  it('output parses back to the same endpoints', () => {
    const h = parsed(encodeProxyV1({ family: 'tcp4', source: src4, destination: dst4 }));
    assert.deepEqual(h.source, src4);
    assert.deepEqual(h.destination, dst4);
  });
});

describe('encodeProxyV2', () => {
  it('writes TCP4 PROXY bytes exactly (0x21 0x11, len 12)', () => {
    const buf = encodeProxyV2({ command: 'proxy', source: src4, destination: dst4 });
    assert.equal(buf.toString('hex'), `${SIG_HEX}2111000c` + 'c0000201' + 'c6336407' + '9c40' + '0019');
  });

  it('writes LOCAL as 16 bytes with family UNSPEC, ignoring endpoints', () => {
    const expected = `${SIG_HEX}20000000`;
    assert.equal(encodeProxyV2({ command: 'local' }).toString('hex'), expected);
    assert.equal(encodeProxyV2({ command: 'local', source: src4, destination: dst4 }).toString('hex'), expected);
    const h = parsed(encodeProxyV2({ command: 'local' }));
    assert.equal(h.command, 'local');
    assert.equal(h.source, null);
  });

  it('LOCAL may still carry TLVs', () => {
    const h = parsed(encodeProxyV2({ command: 'local', uniqueId: Buffer.from('hc-1'), crc32c: true }));
    assert.deepEqual(h.uniqueId, Buffer.from('hc-1'));
    assert.equal(h.crc32cChecked, true);
  });

  it('writes PROXY without endpoints as family UNSPEC', () => {
    assert.equal(encodeProxyV2({ command: 'proxy' }).toString('hex'), `${SIG_HEX}21000000`);
    assert.equal(parsed(encodeProxyV2({ command: 'proxy' })).family, 'unspec');
  });

  it('refuses a PROXY header with only one endpoint', () => {
    throwsCode(() => encodeProxyV2({ command: 'proxy', source: src4 }), 'BAD_ADDRESS');
    throwsCode(() => encodeProxyV2({ command: 'proxy', destination: dst4 }), 'BAD_ADDRESS');
  });

  it('writes TCP6 when both endpoints are IPv6', () => {
    const buf = encodeProxyV2({
      command: 'proxy',
      source: { address: '2001:db8::1', port: 1 },
      destination: { address: '2001:DB8:0::2', port: 2 },
    });
    assert.equal(buf[13], 0x21);
    assert.equal(buf.readUInt16BE(14), 36);
    const h = parsed(buf);
    assert.deepEqual(h.source, { address: '2001:db8::1', port: 1 });
    assert.deepEqual(h.destination, { address: '2001:db8::2', port: 2 });
  });

  it('encodes mixed IPv4/IPv6 endpoints as INET6 with v4-mapped addresses', () => {
    for (const [s, d] of [
      [src4, { address: '2001:db8::25', port: 25 }],
      [{ address: '2001:db8::9', port: 9 }, dst4],
    ] as const) {
      const buf = encodeProxyV2({ command: 'proxy', source: s, destination: d });
      assert.equal(buf[13], 0x21);
      assert.equal(buf.length, 16 + 36);
      const h = parsed(buf);
      assert.equal(h.family, 'tcp6');
      const mapped = (a: string): string => (a.includes(':') ? a : `::ffff:${a}`);
      assert.deepEqual(h.source, { address: mapped(s.address), port: s.port });
      assert.deepEqual(h.destination, { address: mapped(d.address), port: d.port });
    }
    const buf = encodeProxyV2({ command: 'proxy', source: src4, destination: { address: '::1', port: 25 } });
    assert.equal(buf.subarray(16, 32).toString('hex'), '00000000000000000000ffffc0000201');
  });

  it('keeps two v4-mapped IPv6 endpoints as INET6 (no silent unmapping)', () => {
    const buf = encodeProxyV2({
      command: 'proxy',
      source: { address: '::ffff:192.0.2.1', port: 1 },
      destination: { address: '::ffff:192.0.2.2', port: 2 },
    });
    assert.equal(buf[13], 0x21);
  });

  it('writes named TLVs in order ALPN, AUTHORITY, UNIQUE_ID, SSL, raw extras, then CRC32C', () => {
    const buf = encodeProxyV2({
      command: 'proxy',
      source: src4,
      destination: dst4,
      crc32c: true,
      tlvs: [{ type: 0xe5, value: Buffer.from('x') }],
      ssl: { client: 1, verify: 0, version: 'TLSv1.2' },
      uniqueId: Buffer.from('u'),
      authority: 'a',
      alpn: Buffer.from('smtp'),
    });
    const h = parsed(buf);
    assert.deepEqual(
      h.tlvs.map((t) => t.type),
      [PP2_TYPE.ALPN, PP2_TYPE.AUTHORITY, PP2_TYPE.UNIQUE_ID, PP2_TYPE.SSL, 0xe5, PP2_TYPE.CRC32C],
    );
  });

  it('stores the CRC32C big-endian, computed over the header with the field zeroed', () => {
    const buf = encodeProxyV2({ command: 'proxy', source: src4, destination: dst4, authority: 'mx.example', crc32c: true });
    assert.equal(buf.subarray(-7, -4).toString('hex'), '030004');
    const stored = buf.readUInt32BE(buf.length - 4);
    const zeroed = Buffer.from(buf);
    zeroed.fill(0, buf.length - 4);
    assert.equal(stored, slowCrc32c(zeroed));
    assert.equal(parsed(buf).crc32cChecked, true);
  });

  it('SSL TLV with version, cipher and CN round-trips', () => {
    const h = parsed(
      encodeProxyV2({
        command: 'proxy',
        source: src4,
        destination: dst4,
        ssl: { client: 0x05, verify: 7, version: 'TLSv1.3', cipher: 'TLS_CHACHA20_POLY1305_SHA256', cn: 'Ünïcode CN' },
      }),
    );
    assert.equal(h.ssl?.client, 5);
    assert.equal(h.ssl?.verify, 7);
    assert.equal(h.ssl?.version, 'TLSv1.3');
    assert.equal(h.ssl?.cipher, 'TLS_CHACHA20_POLY1305_SHA256');
    assert.equal(h.ssl?.cn, 'Ünïcode CN');
    assert.deepEqual(
      h.ssl?.subTlvs.map((t) => t.type),
      [PP2_TYPE.SSL_VERSION, PP2_TYPE.SSL_CN, PP2_TYPE.SSL_CIPHER],
    );
  });

  describe('maxLength (Exim accepts at most 232 bytes)', () => {
    const base = { command: 'proxy' as const, source: src4, destination: dst4 };
    // 16 + 12 + 3 + n
    it('allows exactly 232 bytes', () => {
      const buf = encodeProxyV2({ ...base, uniqueId: Buffer.alloc(128), tlvs: [{ type: 0xe0, value: Buffer.alloc(232 - 16 - 12 - 131 - 3) }], maxLength: 232 });
      assert.equal(buf.length, 232);
    });
    it('throws TOO_LONG one byte over', () => {
      throwsCode(
        () => encodeProxyV2({ ...base, uniqueId: Buffer.alloc(128), tlvs: [{ type: 0xe0, value: Buffer.alloc(232 - 16 - 12 - 131 - 2) }], maxLength: 232 }),
        'TOO_LONG',
      );
    });
    it('counts the CRC32C TLV', () => {
      const tlvs = [{ type: 0xe0, value: Buffer.alloc(232 - 16 - 12 - 3) }];
      assert.equal(encodeProxyV2({ ...base, tlvs, maxLength: 232 }).length, 232);
      throwsCode(() => encodeProxyV2({ ...base, tlvs, crc32c: true, maxLength: 232 }), 'TOO_LONG');
    });
    it('throws TOO_LONG for a long authority plus SSL details', () => {
      throwsCode(
        () =>
          encodeProxyV2({
            ...base,
            authority: `${'a'.repeat(63)}.${'b'.repeat(63)}.example`,
            ssl: { client: 1, verify: 0, version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', cn: 'c'.repeat(64) },
            maxLength: 232,
          }),
        'TOO_LONG',
      );
    });
  });

  it('refuses invalid TLV input', () => {
    const base = { command: 'proxy' as const, source: src4, destination: dst4 };
    throwsCode(() => encodeProxyV2({ ...base, uniqueId: Buffer.alloc(129) }), 'UNIQUE_ID_TOO_LONG');
    throwsCode(() => encodeProxyV2({ ...base, tlvs: [{ type: 0x05, value: Buffer.alloc(129) }] }), 'UNIQUE_ID_TOO_LONG');
    throwsCode(() => encodeProxyV2({ ...base, tlvs: [{ type: PP2_TYPE.CRC32C, value: Buffer.alloc(4) }] }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, authority: 'a', tlvs: [{ type: PP2_TYPE.AUTHORITY, value: Buffer.from('b') }] }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, tlvs: [{ type: PP2_TYPE.AUTHORITY, value: Buffer.from([0xff]) }] }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, tlvs: [{ type: PP2_TYPE.SSL, value: Buffer.alloc(4) }] }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, tlvs: [{ type: 256, value: Buffer.alloc(1) }] }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, tlvs: [{ type: -1, value: Buffer.alloc(1) }] }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, authority: 'bad \ud800 surrogate' }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, ssl: { client: 1, verify: 0, cn: '\udc00' } }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, ssl: { client: 1, verify: 0, version: 'TLSv1.3\u0131' } }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, ssl: { client: 1, verify: 0, cipher: 'A\nB' } }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, ssl: { client: 256, verify: 0 } }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, ssl: { client: 1, verify: 2 ** 32 } }), 'BAD_TLV');
    throwsCode(() => encodeProxyV2({ ...base, tlvs: [{ type: 0xe0, value: Buffer.alloc(65536) }] }), 'TOO_LONG');
    throwsCode(
      () => encodeProxyV2({ ...base, tlvs: [{ type: 0xe0, value: Buffer.alloc(65535 - 12 - 3) }, { type: 0xe1, value: Buffer.alloc(0) }] }),
      'TOO_LONG',
    );
  });

  it('accepts the largest header v2 can express (len 65535)', () => {
    const buf = encodeProxyV2({ command: 'proxy', source: src4, destination: dst4, tlvs: [{ type: 0xe0, value: Buffer.alloc(65535 - 12 - 3) }] });
    assert.equal(buf.readUInt16BE(14), 65535);
    const r = parseProxyHeader(buf, { maxV2Length: 65535 });
    assert.equal(r.kind, 'header');
    assert.equal(r.length, buf.length);
  });

  it('refuses bad addresses and ports', () => {
    throwsCode(() => encodeProxyV2({ command: 'proxy', source: { address: 'localhost', port: 1 }, destination: dst4 }), 'BAD_ADDRESS');
    throwsCode(() => encodeProxyV2({ command: 'proxy', source: { address: '1.2.3.04', port: 1 }, destination: dst4 }), 'BAD_ADDRESS');
    throwsCode(() => encodeProxyV2({ command: 'proxy', source: { address: 'fe80::1%lo', port: 1 }, destination: dst4 }), 'BAD_ADDRESS');
    throwsCode(() => encodeProxyV2({ command: 'proxy', source: { address: '[::1]', port: 1 }, destination: dst4 }), 'BAD_ADDRESS');
    throwsCode(() => encodeProxyV2({ command: 'proxy', source: { ...src4, port: 70000 }, destination: dst4 }), 'BAD_PORT');
  });
});
