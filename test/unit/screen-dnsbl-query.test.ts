import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { dnsblQueryName, reversedAddress } from '../../src/screen/dnsbl-query.js';

describe('dnsblQueryName', () => {
  it('reverses IPv4 octets under the zone (RFC 5782 §2.1)', () => {
    assert.equal(dnsblQueryName('192.0.2.99', 'zen.spamhaus.org'), '99.2.0.192.zen.spamhaus.org');
    assert.equal(dnsblQueryName('127.0.0.2', 'bl.example'), '2.0.0.127.bl.example');
  });

  it('writes IPv6 as 32 reversed nibbles (RFC 5782 §2.4)', () => {
    // The RFC's own example: 2001:db8:1:2:3:4:567:89ab.
    assert.equal(reversedAddress('2001:db8:1:2:3:4:567:89ab'), 'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2');
    const name = dnsblQueryName('2001:DB8::1', 'bl.example')!;
    assert.equal(name, `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.bl.example`);
    assert.equal(name.split('.').length, 32 + 2);
    assert.equal(reversedAddress('fe80::1%eth0'), `1.${'0.'.repeat(27)}0.8.e.f`, 'a zone id is dropped');
  });

  it('asks an IPv4-mapped IPv6 address as the IPv4 address', () => {
    assert.equal(dnsblQueryName('::ffff:192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
    assert.equal(dnsblQueryName('::FFFF:c000:263', 'bl.example'), '99.2.0.192.bl.example');
  });

  it('gives null for text that is no address', () => {
    for (const bad of ['', 'localhost', '192.0.2', '192.0.2.256', '1:2:3', '01.2.3.4', '::ffff:1.2.3']) assert.equal(dnsblQueryName(bad, 'bl.example'), null, bad);
  });
});

describe('reversedAddress on any text', () => {
  it('never throws, and gives 4 labels or 32 nibbles when it answers', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.ipV4(), fc.ipV6()), (text) => {
        const r = reversedAddress(text);
        if (r !== null) assert.ok([4, 32].includes(r.split('.').length), `${text} -> ${r}`);
      }),
      { numRuns: 2000 },
    );
  });
});
