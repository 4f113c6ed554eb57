import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { crc32c } from '../../src/proxy/index.js';

// Bit-at-a-time reference straight from the definition (RFC 4960 App. B / RFC 3720 B.4):
// reflected Castagnoli polynomial, init all-ones, final complement. No table.
function slowCrc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (crc & 1 ? 0x82f63b78 : 0);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('gives the standard check value for "123456789"', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(slowCrc32c(Buffer.from('123456789')), 0xe3069283);
  });

  it('is 0 for empty input', () => {
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });

  it('matches the bitwise reference on fixed inputs', () => {
    const inputs = [
      Buffer.alloc(32, 0x00),
      Buffer.alloc(32, 0xff),
      Buffer.from(Array.from({ length: 32 }, (_, i) => i)),
      Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)),
      Buffer.from('The quick brown fox jumps over the lazy dog'),
      Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00, 0x00]),
    ];
    for (const b of inputs) assert.equal(crc32c(b), slowCrc32c(b), b.toString('hex'));
  });

  it('matches RFC 3720 B.4 vectors (32 zero bytes, 32 0xff bytes, ascending)', () => {
    // Well-known iSCSI check values.
    assert.equal(crc32c(Buffer.alloc(32, 0x00)), 0x8a9136aa);
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
  });

  it('matches the reference on random data and continues across splits', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (data, cut) => {
        const whole = crc32c(data);
        assert.equal(whole, slowCrc32c(data));
        const k = data.length === 0 ? 0 : cut % (data.length + 1);
        assert.equal(crc32c(data.subarray(k), crc32c(data.subarray(0, k))), whole);
      }),
      { numRuns: 300 },
    );
  });
});
