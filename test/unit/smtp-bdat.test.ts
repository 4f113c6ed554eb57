import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatBdat, parseBdat } from '../../src/smtp/bdat.js';
import { SmtpError } from '../../src/smtp/errors.js';

function rejects(args: string): void {
  assert.throws(
    () => parseBdat(args),
    (e: unknown) => {
      assert.ok(e instanceof SmtpError, `not an SmtpError: ${String(e)}`);
      assert.equal(e.smtpCode, 501);
      assert.equal(e.enhanced, '5.5.4');
      return true;
    },
    JSON.stringify(args),
  );
}

describe('parseBdat', () => {
  it('parses a chunk size', () => {
    assert.deepEqual(parseBdat('1000'), { size: 1000, last: false });
  });

  it('parses LAST', () => {
    assert.deepEqual(parseBdat('1000 LAST'), { size: 1000, last: true });
  });

  it('parses `0 LAST` (the empty final chunk) and `0`', () => {
    assert.deepEqual(parseBdat('0 LAST'), { size: 0, last: true });
    assert.deepEqual(parseBdat('0'), { size: 0, last: false });
  });

  it('LAST is case-insensitive', () => {
    for (const l of ['last', 'Last', 'lAsT']) assert.deepEqual(parseBdat(`42 ${l}`), { size: 42, last: true });
  });

  it('tolerates several spaces before LAST and trailing spaces', () => {
    assert.deepEqual(parseBdat('7   LAST'), { size: 7, last: true });
    assert.deepEqual(parseBdat('7 LAST  '), { size: 7, last: true });
    assert.deepEqual(parseBdat('7 '), { size: 7, last: false });
  });

  it('leading zeros are just decimal', () => {
    assert.deepEqual(parseBdat('0010'), { size: 10, last: false });
  });

  it('rejects garbage', () => {
    for (const a of [
      '',
      ' ',
      'LAST',
      'abc',
      '10x',
      'x10',
      '1000 LAS',
      '1000 LASTX',
      '1000LAST',
      '1000 LAST extra',
      '1000 1',
      '1.5',
      '1e3',
      '0x10',
      ' 1000',
      '1000\tLAST',
      '1000\r\n',
      '１０',
      '1_000',
    ]) {
      rejects(a);
    }
  });

  it('rejects negative and signed sizes', () => {
    for (const a of ['-1', '-0', '+1', '-1 LAST']) rejects(a);
  });

  it('rejects huge sizes, accepts the largest 15-digit one', () => {
    assert.deepEqual(parseBdat('999999999999999'), { size: 999_999_999_999_999, last: false });
    for (const a of ['9999999999999999', '9007199254740993', '1'.repeat(100), '1'.repeat(400) + ' LAST']) rejects(a);
  });
});

describe('formatBdat', () => {
  it('formats with and without LAST', () => {
    assert.equal(formatBdat({ size: 1000, last: false }), 'BDAT 1000\r\n');
    assert.equal(formatBdat({ size: 1000, last: true }), 'BDAT 1000 LAST\r\n');
    assert.equal(formatBdat({ size: 0, last: true }), 'BDAT 0 LAST\r\n');
  });

  it('property: parseBdat reads back what formatBdat writes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 999_999_999_999_999 }), fc.boolean(), (size, last) => {
        const line = formatBdat({ size, last });
        assert.match(line, /^BDAT \d+( LAST)?\r\n$/);
        assert.deepEqual(parseBdat(line.slice('BDAT '.length, -2)), { size, last });
      }),
      { numRuns: 500 },
    );
  });
});
