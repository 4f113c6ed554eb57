// The outbound PROXY header: what Postern sends first to a proxy-v1/proxy-v2 backend.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildProxyHeader, healthHeader, MAX_PROXY_HEADER, proxyLocalHeader, type ProxyIdentity } from '../../src/backend/proxy-out.js';
import { handshake } from '../../src/backend/handshake.js';
import { PP2_CLIENT, PP2_TYPE, ProxyProtocolError, parseProxyHeader, type ProxyHeader } from '../../src/proxy/index.js';

function parsed(buf: Buffer): ProxyHeader {
  const r = parseProxyHeader(buf);
  assert.equal(r.kind, 'header');
  assert.equal(r.length, buf.length, 'the header is the whole buffer');
  return r.header;
}

const tlvTypes = (h: ProxyHeader): number[] => h.tlvs.map((t) => t.type);

const base: ProxyIdentity = {
  client: { address: '192.0.2.10', port: 41234 },
  local: { address: '198.51.100.1', port: 25 },
  tls: null,
  connId: 'a1b2c300001',
};
const tls13 = { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', sni: 'mx.example.com' };

describe('buildProxyHeader v2', () => {
  it('plaintext IPv4: INET, SSL TLV with no client bit, UNIQUE_ID = conn id, no AUTHORITY', () => {
    const b = buildProxyHeader(2, base);
    const h = parsed(b);
    assert.equal(b[12], 0x21, 'version 2, PROXY');
    assert.equal(b[13], 0x11, 'INET, STREAM');
    assert.equal(h.family, 'tcp4');
    assert.deepEqual(h.source, base.client);
    assert.deepEqual(h.destination, base.local);
    assert.equal(h.ssl?.client, 0);
    assert.notEqual(h.ssl?.verify, 0, 'no verified certificate');
    assert.equal(h.ssl?.version, undefined);
    assert.equal(h.uniqueId?.toString(), base.connId);
    assert.equal(h.authority, undefined);
    assert.deepEqual(tlvTypes(h), [PP2_TYPE.UNIQUE_ID, PP2_TYPE.SSL]);
  });

  it('TLS client: client SSL bit, VERSION and CIPHER sub-TLVs, AUTHORITY = SNI', () => {
    const h = parsed(buildProxyHeader(2, { ...base, tls: tls13 }));
    assert.equal(h.ssl?.client, PP2_CLIENT.SSL);
    assert.equal(h.ssl?.version, 'TLSv1.3');
    assert.equal(h.ssl?.cipher, 'TLS_AES_256_GCM_SHA384');
    assert.equal(h.authority, 'mx.example.com');
    assert.equal(h.uniqueId?.toString(), base.connId);
  });

  it('TLS without SNI: no AUTHORITY', () => {
    const h = parsed(buildProxyHeader(2, { ...base, tls: { ...tls13, sni: null } }));
    assert.equal(h.authority, undefined);
    assert.equal(h.ssl?.client, PP2_CLIENT.SSL);
  });

  it('IPv6 both sides: INET6', () => {
    const b = buildProxyHeader(2, { ...base, client: { address: '2001:db8::5', port: 1 }, local: { address: '2001:db8::1', port: 25 } });
    assert.equal(b[13], 0x21);
    const h = parsed(b);
    assert.equal(h.source?.address, '2001:db8::5');
    assert.equal(h.destination?.address, '2001:db8::1');
  });

  it('mixed families: both as INET6, the IPv4 one v4-mapped (as HAProxy)', () => {
    const h = parsed(buildProxyHeader(2, { ...base, local: { address: '2001:db8::1', port: 25 } }));
    assert.equal(h.family, 'tcp6');
    assert.equal(h.source?.address, '::ffff:192.0.2.10');
    assert.equal(h.destination?.address, '2001:db8::1');
  });

  it('::ffff:a.b.c.d socket addresses are sent as IPv4', () => {
    const b = buildProxyHeader(2, {
      ...base,
      client: { address: '::ffff:127.0.0.2', port: 5000 },
      local: { address: '::FFFF:127.0.0.1', port: 2525 },
    });
    assert.equal(b[13], 0x11);
    const h = parsed(b);
    assert.deepEqual(h.source, { address: '127.0.0.2', port: 5000 });
    assert.deepEqual(h.destination, { address: '127.0.0.1', port: 2525 });
  });

  it(`never exceeds ${MAX_PROXY_HEADER} bytes: long SNI, cipher and conn id are dropped in order`, () => {
    const v6 = { client: { address: '2001:db8:1:2:3:4:5:6', port: 65535 }, local: { address: '2001:db8:ffff::1', port: 465 } };
    const longSni = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`; // 253, the DNS maximum
    const longCipher = 'X'.repeat(120);
    const longId = 'i'.repeat(128);

    // Everything long: only the SSL TLV with its client bit survives... plus what fits.
    const all = buildProxyHeader(2, { ...base, ...v6, tls: { version: 'TLSv1.3', cipher: longCipher, sni: longSni }, connId: longId });
    assert.ok(all.length <= MAX_PROXY_HEADER, `${all.length} bytes`);
    let h = parsed(all);
    assert.equal(h.authority, undefined, 'AUTHORITY goes first');
    assert.equal(h.ssl?.client, PP2_CLIENT.SSL, 'the client bit always stays');
    assert.equal(h.ssl?.cipher, undefined, 'CIPHER goes second');
    assert.equal(h.ssl?.version, 'TLSv1.3', 'VERSION fits once CIPHER is gone');
    assert.equal(h.uniqueId?.toString(), longId, 'UNIQUE_ID is kept longest');

    // Long SNI only: AUTHORITY dropped, the rest kept.
    h = parsed(buildProxyHeader(2, { ...base, ...v6, tls: { ...tls13, sni: longSni } }));
    assert.equal(h.authority, undefined);
    assert.equal(h.ssl?.cipher, tls13.cipher);
    assert.equal(h.uniqueId?.toString(), base.connId);

    // An SNI that fits is sent.
    const fitting = 'mail.' + 'x'.repeat(90) + '.example';
    h = parsed(buildProxyHeader(2, { ...base, ...v6, tls: { ...tls13, sni: fitting } }));
    assert.equal(h.authority, fitting);

    // Even a pathological version string: all optional TLVs go, the header stays valid.
    const worst = buildProxyHeader(2, { ...base, ...v6, tls: { version: 'V'.repeat(200), cipher: longCipher, sni: longSni }, connId: longId });
    assert.ok(worst.length <= MAX_PROXY_HEADER, `${worst.length} bytes`);
    h = parsed(worst);
    assert.equal(h.ssl?.client, PP2_CLIENT.SSL);
    assert.equal(h.ssl?.version, undefined);
    assert.equal(h.uniqueId?.toString(), longId);
  });

  it('every combination of lengths stays within the limit and parses back', () => {
    for (const sniLen of [0, 1, 50, 100, 140, 160, 200, 253]) {
      for (const cipherLen of [0, 10, 30, 60, 120]) {
        for (const idLen of [0, 11, 64, 128, 129]) {
          for (const fam of ['4', '6', 'mixed'] as const) {
            const client = fam === '4' ? base.client : { address: '2001:db8::77', port: 9 };
            const local = fam === '6' ? { address: '2001:db8::1', port: 25 } : base.local;
            const tls = { version: 'TLSv1.2', cipher: 'C'.repeat(cipherLen), sni: sniLen ? 's'.repeat(sniLen) : null };
            const b = buildProxyHeader(2, { client, local, tls, connId: 'q'.repeat(idLen) });
            assert.ok(b.length <= MAX_PROXY_HEADER, `sni ${sniLen} cipher ${cipherLen} id ${idLen} ${fam}: ${b.length}`);
            const h = parsed(b);
            assert.equal(h.ssl?.client, PP2_CLIENT.SSL);
            if (idLen === 129 || idLen === 0) assert.equal(h.uniqueId, undefined, 'over 128 bytes (§2.2.5) or empty: not sent');
          }
        }
      }
    }
  });

  it('non-ASCII version/cipher are left out rather than sent or thrown', () => {
    const h = parsed(buildProxyHeader(2, { ...base, tls: { version: 'TLSv1.3\u00e9', cipher: 'ok', sni: 'm\u00fcnchen.example' } }));
    assert.equal(h.ssl?.version, undefined);
    assert.equal(h.ssl?.cipher, 'ok');
    assert.equal(h.authority, 'm\u00fcnchen.example', 'AUTHORITY is UTF-8 (§2.2.2)');
  });
});

describe('buildProxyHeader v1', () => {
  it('IPv4: a TCP4 line', () => {
    const b = buildProxyHeader(1, base);
    assert.equal(b.toString('latin1'), 'PROXY TCP4 192.0.2.10 198.51.100.1 41234 25\r\n');
    assert.deepEqual(parsed(b).source, base.client);
  });

  it('IPv6: a TCP6 line', () => {
    const b = buildProxyHeader(1, { ...base, client: { address: '2001:db8::5', port: 1 }, local: { address: '::1', port: 25 } });
    assert.equal(b.toString('latin1'), 'PROXY TCP6 2001:db8::5 ::1 1 25\r\n');
  });

  it('mixed families: TCP6 with the IPv4 side v4-mapped', () => {
    const b = buildProxyHeader(1, { ...base, local: { address: '::1', port: 25 } });
    assert.equal(b.toString('latin1'), 'PROXY TCP6 ::ffff:192.0.2.10 ::1 41234 25\r\n');
    assert.equal(parsed(b).family, 'tcp6');
  });

  it('::ffff:a.b.c.d on both sides: TCP4', () => {
    const b = buildProxyHeader(1, { ...base, client: { address: '::ffff:127.0.0.3', port: 7 }, local: { address: '::ffff:127.0.0.1', port: 25 } });
    assert.equal(b.toString('latin1'), 'PROXY TCP4 127.0.0.3 127.0.0.1 7 25\r\n');
  });

  it('ignores TLS and conn id (v1 has no TLVs)', () => {
    assert.deepEqual(buildProxyHeader(1, { ...base, tls: tls13 }), buildProxyHeader(1, base));
  });
});

describe('health-check headers', () => {
  it('v2 LOCAL: 16 bytes, command LOCAL, family UNSPEC', () => {
    const b = proxyLocalHeader(2);
    assert.equal(b.length, 16);
    assert.equal(b[12], 0x20);
    assert.equal(b[13], 0x00);
    const h = parsed(b);
    assert.equal(h.command, 'local');
    assert.equal(h.source, null);
    assert.deepEqual(healthHeader(2, { local: base.client, remote: base.local }), b);
  });

  it('v1: proxyLocalHeader is UNKNOWN, healthHeader names the check connection (Postfix refuses UNKNOWN)', () => {
    assert.equal(proxyLocalHeader(1).toString('latin1'), 'PROXY UNKNOWN\r\n');
    const b = healthHeader(1, { local: { address: '::ffff:127.0.0.1', port: 50000 }, remote: { address: '127.0.0.1', port: 25 } });
    assert.equal(b.toString('latin1'), 'PROXY TCP4 127.0.0.1 127.0.0.1 50000 25\r\n');
  });
});

describe('handshake() with a PROXY identity', () => {
  it('a client the header cannot name fails before any connection (port 1 is never tried)', async () => {
    const client = { address: '[UNAVAILABLE]', port: 0, destAddress: '127.0.0.1', destPort: 25, helo: null, proto: 'ESMTP' as const, name: null, login: null };
    for (const identity of ['proxy-v1', 'proxy-v2'] as const) {
      await assert.rejects(
        handshake({ host: '127.0.0.1', port: 1, text: '127.0.0.1:1' }, client, { identity, hostname: 'h', connectTimeout: 500, replyTimeout: 500 }),
        (e: unknown) => e instanceof ProxyProtocolError && e.code === 'BAD_ADDRESS',
      );
    }
  });
});
