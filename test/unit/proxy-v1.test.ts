import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ProxyProtocolError, parseProxyHeader, type ParseResult, type ProxyErrorCode } from '../../src/proxy/index.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function parse(s: string | Buffer): ParseResult {
  return parseProxyHeader(typeof s === 'string' ? b(s) : s);
}

function codeOf(input: Buffer): ProxyErrorCode | 'incomplete' | 'header' {
  try {
    return parseProxyHeader(input).kind;
  } catch (e) {
    assert.ok(e instanceof ProxyProtocolError, `unexpected ${String(e)}`);
    return e.code;
  }
}

function expectError(s: string, code: ProxyErrorCode): void {
  assert.throws(
    () => parse(s),
    (e: unknown) => e instanceof ProxyProtocolError && e.code === code,
    `${JSON.stringify(s)} should fail with ${code}`,
  );
}

/** Every strict prefix of a valid header is 'incomplete'. */
function assertPrefixesIncomplete(full: Buffer): void {
  for (let i = 0; i < full.length; i++) {
    const r = parseProxyHeader(full.subarray(0, i));
    assert.equal(r.kind, 'incomplete', `prefix of ${i} bytes of ${JSON.stringify(full.toString('latin1'))}`);
  }
}

const UNKNOWN_WORST =
  'PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
const TCP6_LONGEST =
  'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';

describe('PROXY v1: valid lines', () => {
  it('parses the spec example (§2.1)', () => {
    const r = parse('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
    assert.deepEqual(r, {
      kind: 'header',
      length: 47,
      header: {
        version: 1,
        command: 'proxy',
        family: 'tcp4',
        transport: 'stream',
        source: { address: '192.168.0.1', port: 56324 },
        destination: { address: '192.168.0.11', port: 443 },
        tlvs: [],
      },
    });
  });

  it('accepts boundary values: 255.255.255.255 and port 65535 as the source, 0.0.0.0 and port 0 as the destination', () => {
    const r = parse('PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n');
    assert.equal(r.kind, 'header');
    assert.deepEqual(r.header.source, { address: '255.255.255.255', port: 65535 });
    assert.deepEqual(r.header.destination, { address: '0.0.0.0', port: 0 });
  });

  it('refuses an unspecified source (0.0.0.0, ::, ::ffff:0.0.0.0) or source port 0: no client has it (issue 21)', () => {
    for (const line of [
      'PROXY TCP4 0.0.0.0 127.0.0.1 0 25\r\n',
      'PROXY TCP4 0.0.0.0 127.0.0.1 40000 25\r\n',
      'PROXY TCP4 192.0.2.7 127.0.0.1 0 25\r\n',
      'PROXY TCP6 :: ::1 40000 25\r\n',
      'PROXY TCP6 0:0:0:0:0:0:0:0 ::1 40000 25\r\n',
      'PROXY TCP6 ::ffff:0.0.0.0 ::1 40000 25\r\n',
      'PROXY TCP6 2001:db8::1 ::1 0 25\r\n',
    ]) {
      expectError(line, 'UNSPECIFIED_SOURCE');
    }
    // Refused as soon as the field is complete, before the CRLF.
    assert.equal(codeOf(b('PROXY TCP4 0.0.0.0 ')), 'UNSPECIFIED_SOURCE');
    assert.equal(codeOf(b('PROXY TCP4 0.0.0.0')), 'incomplete');
    assert.equal(codeOf(b('PROXY TCP4 192.0.2.7 127.0.0.1 0 ')), 'UNSPECIFIED_SOURCE');
    // UNKNOWN carries no client: whatever follows it is ignored (§2.1), zeros included.
    assert.equal(codeOf(b('PROXY UNKNOWN 0.0.0.0 0.0.0.0 0 0\r\n')), 'header');
  });

  it('normalises TCP6 addresses to lowercase compressed form', () => {
    const r = parse('PROXY TCP6 2001:DB8:0:0:0:0:0:1 0:0:0:0:0:0:0:1 1234 25\r\n');
    assert.equal(r.kind, 'header');
    assert.equal(r.header.family, 'tcp6');
    assert.deepEqual(r.header.source, { address: '2001:db8::1', port: 1234 });
    assert.deepEqual(r.header.destination, { address: '::1', port: 25 });
  });

  it('accepts a v4-mapped IPv6 address in TCP6 and reports it as ::ffff:a.b.c.d', () => {
    const r = parse('PROXY TCP6 ::FFFF:192.0.2.1 ::ffff:c000:202 1 2\r\n');
    assert.equal(r.kind, 'header');
    assert.equal(r.header.source?.address, '::ffff:192.0.2.1');
    assert.equal(r.header.destination?.address, '::ffff:192.0.2.2');
  });

  it('accepts the longest TCP6 line (104 bytes)', () => {
    assert.equal(TCP6_LONGEST.length, 104);
    const r = parse(TCP6_LONGEST);
    assert.equal(r.kind, 'header');
    assert.equal(r.length, 104);
    assert.equal(r.header.source?.address, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
  });

  it('accepts PROXY UNKNOWN in short form', () => {
    const r = parse('PROXY UNKNOWN\r\n');
    assert.deepEqual(r, {
      kind: 'header',
      length: 15,
      header: {
        version: 1,
        command: 'proxy',
        family: 'unknown',
        transport: 'unspec',
        source: null,
        destination: null,
        tlvs: [],
      },
    });
  });

  it('ignores anything after UNKNOWN up to CRLF, including the 107-byte worst case', () => {
    assert.equal(UNKNOWN_WORST.length, 107);
    for (const line of [UNKNOWN_WORST, 'PROXY UNKNOWN whatever junk \xff here\r\n', 'PROXY UNKNOWN \r\n']) {
      const r = parse(line);
      assert.equal(r.kind, 'header');
      assert.equal(r.length, line.length);
      assert.equal(r.header.family, 'unknown');
      assert.equal(r.header.source, null);
    }
  });

  it('stops at the CRLF: bytes after it belong to the application', () => {
    const line = 'PROXY TCP4 10.0.0.1 10.0.0.2 1000 25\r\n';
    for (const tail of ['EHLO x\r\n', 'PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n', '\r\n', '\n', 'x'.repeat(500)]) {
      const r = parse(line + tail);
      assert.equal(r.kind, 'header');
      assert.equal(r.length, line.length);
    }
    const u = parse('PROXY UNKNOWN\r\nQUIT\r\n');
    assert.equal(u.kind, 'header');
    assert.equal(u.length, 15);
  });

  it('accepts a Uint8Array that is a view into a larger buffer', () => {
    const big = b('xxxxPROXY TCP4 1.2.3.4 5.6.7.8 9 10\r\nyyy');
    const view = new Uint8Array(big.buffer, big.byteOffset + 4, big.length - 4);
    const r = parseProxyHeader(view);
    assert.equal(r.kind, 'header');
    assert.equal(r.length, 33);
    assert.deepEqual(r.header.source, { address: '1.2.3.4', port: 9 });
  });
});

describe('PROXY v1: truncation', () => {
  const valid = [
    'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n',
    'PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 65535 0\r\n',
    TCP6_LONGEST,
    'PROXY UNKNOWN\r\n',
    UNKNOWN_WORST,
  ];
  it('gives incomplete for every strict prefix of valid lines', () => {
    for (const v of valid) assertPrefixesIncomplete(b(v));
  });
  it('gives incomplete for an empty buffer', () => {
    assert.deepEqual(parseProxyHeader(new Uint8Array(0)), { kind: 'incomplete' });
  });
});

// [input, expected code, shortest prefix that must already fail (proves early rejection), its code if different].
// A partial address token is refused as BAD_ADDRESS; FAMILY_MISMATCH needs the whole token.
const MALFORMED: [string, ProxyErrorCode, string?, ProxyErrorCode?][] = [
  // signature
  ['PROXY\r\n', 'BAD_SIGNATURE', 'PROXY\r'],
  ['PROX\r\n', 'BAD_SIGNATURE', 'PROX\r'],
  ['PROXYjunk\r\n', 'BAD_SIGNATURE', 'PROXYj'],
  ['Proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'BAD_SIGNATURE', 'Pr'],
  ['P\r\n\r\n\x00\r\nQUIT\n', 'BAD_SIGNATURE', 'P\r'],
  ['GET / HTTP/1.1\r\n', 'NOT_PROXY', 'G'],
  ['EHLO x\r\n', 'NOT_PROXY', 'E'],
  // protocol token
  ['PROXY \r\n', 'BAD_FAMILY'],
  ['PROXY SOMETHING\r\n', 'BAD_FAMILY', 'PROXY S'],
  ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', 'BAD_FAMILY', 'PROXY TCP5'],
  ['PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n', 'BAD_FAMILY', 'PROXY t'],
  ['PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'BAD_FAMILY', 'PROXY  '],
  ['PROXY UNKNOWNjunk\r\n', 'BAD_FAMILY', 'PROXY UNKNOWNj'],
  ['PROXY TCP4\r\n', 'BAD_FORMAT', 'PROXY TCP4\r'],
  ['PROXY TCP4 \r\n', 'BAD_ADDRESS'],
  // line ends and length
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', 'BAD_FORMAT', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', 'BAD_FORMAT', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n', 'BAD_FORMAT'],
  ['PROXY UNKNOWN\rX\r\n', 'BAD_FORMAT', 'PROXY UNKNOWN\rX'],
  ['PROXY UNKNOWN a\nb\r\n', 'BAD_FORMAT', 'PROXY UNKNOWN a\n'],
  ['PROXY UNKNOWN ' + 'x'.repeat(120) + '\r\n', 'TOO_LONG', 'PROXY UNKNOWN ' + 'x'.repeat(93)],
  // 108 bytes: CRLF one byte too late; known when the CR lands at index 106
  [UNKNOWN_WORST.replace('65535\r\n', '65535x\r\n'), 'TOO_LONG', UNKNOWN_WORST.replace('65535\r\n', '65535x\r')],
  // address families
  ['PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n', 'FAMILY_MISMATCH', 'PROXY TCP4 2001', 'BAD_ADDRESS'],
  ['PROXY TCP4 1.2.3.4 ::1 1 2\r\n', 'FAMILY_MISMATCH', 'PROXY TCP4 1.2.3.4 :', 'BAD_ADDRESS'],
  ['PROXY TCP4 ::ffff:1.2.3.4 5.6.7.8 1 2\r\n', 'FAMILY_MISMATCH', 'PROXY TCP4 :', 'BAD_ADDRESS'],
  ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', 'FAMILY_MISMATCH', 'PROXY TCP6 1.', 'BAD_ADDRESS'],
  ['PROXY TCP6 ::1 127.0.0.1 1 2\r\n', 'FAMILY_MISMATCH', 'PROXY TCP6 ::1 127.', 'BAD_ADDRESS'],
  ['PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP6 fe80::1%'],
  // IPv4 syntax
  ['PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 01'],
  ['PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 1.2.3.04'],
  ['PROXY TCP4 1.2.3.4 5.6.7.00 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 1.2.3.4 5.6.7.00'],
  ['PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 256'],
  ['PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 1.2.3 '],
  ['PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 1.2.3.4.'],
  ['PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 1..'],
  ['PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 1.2.3.4\t'],
  ['PROXY TCP4 1.2.3.\xe94 5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 1.2.3.\xe9'],
  ['PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP4 1.2.3.4  '],
  // IPv6 syntax
  ['PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP6 ::ffff:01.'],
  ['PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP6 1:2:3:4:5:6:7:8:'],
  ['PROXY TCP6 12345:: ::1 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP6 12345'],
  ['PROXY TCP6 :::1 ::1 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP6 :::'],
  ['PROXY TCP6 1::2::3 ::1 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP6 1::2::'],
  ['PROXY TCP6 [::1] ::1 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP6 ['],
  ['PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n', 'BAD_ADDRESS'],
  ['PROXY TCP6 g::1 ::1 1 2\r\n', 'BAD_ADDRESS', 'PROXY TCP6 g'],
  // ports
  ['PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 12345'.concat('6')],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 08'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 00'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 +'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 -'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 0x'],
  ['PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8  '],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n', 'BAD_PORT', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 \r'],
  // token count
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', 'BAD_FORMAT', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 '],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', 'BAD_FORMAT', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 '],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', 'BAD_FORMAT', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r'],
  ['PROXY TCP6 ::1 ::2\r\n', 'BAD_FORMAT', 'PROXY TCP6 ::1 ::2\r'],
];

describe('PROXY v1: malformed lines', () => {
  for (const [input, code, early, earlyCode] of MALFORMED) {
    it(`${JSON.stringify(input.length > 60 ? input.slice(0, 60) + '...' : input)} -> ${code}`, () => {
      expectError(input, code);
      if (early !== undefined) {
        assert.ok(input.startsWith(early), 'test case: early prefix must be a prefix');
        expectError(early, earlyCode ?? code);
        assert.equal(codeOf(b(early.slice(0, -1))), 'incomplete', 'one byte earlier is still a valid prefix');
      }
      // Once a prefix fails, every longer one fails too; before that, only 'incomplete'.
      const full = b(input);
      // The same code whether the bytes come at once or one by one (except the documented
      // BAD_ADDRESS-before-FAMILY_MISMATCH case).
      let failed = false;
      for (let i = 1; i <= full.length; i++) {
        const r = codeOf(full.subarray(0, i));
        assert.notEqual(r, 'header', `prefix ${i} must not parse`);
        if (failed) assert.notEqual(r, 'incomplete', `prefix ${i} recovered after failing`);
        if (r !== 'incomplete' && !failed && earlyCode === undefined) assert.equal(r, code, `first failure at ${i}`);
        if (r !== 'incomplete') failed = true;
      }
    });
  }

  it('errors carry the byte offset where the problem was seen', () => {
    try {
      parse('PROXY TCP4 1.2.3.4 5.6.7.8 1 080\r\n');
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof ProxyProtocolError);
      assert.equal(e.code, 'BAD_PORT');
      assert.equal(e.offset, 29);
      assert.equal(e.name, 'ProxyProtocolError');
      assert.ok(e instanceof Error);
      assert.ok(e.stack);
    }
  });
});
