// limits.message_size: a slip such as `message_size: 50` (meant as 50MB) is refused with a
// message that names the reading, instead of being advertised as `SIZE 50`; byte counts
// copied from Postfix's message_size_limit stay valid.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig, validateConfigText } from '../../src/config/index.js';
import { formatSize, isBareNumber } from '../../src/config/size.js';

const config = (size: string): string => `listeners:
  - name: smtp
    listen: 127.0.0.1:2525
backends:
  servers:
    - address: 127.0.0.1:2526
limits:
  message_size: ${size}
`;

function refusal(size: string): string {
  const v = validateConfigText(config(size));
  assert.equal(v.config, null, `${size} should be refused`);
  assert.deepEqual(v.problems.map((p) => [p.path, p.line, p.col]), [['limits.message_size', 8, 17]]);
  return v.problems[0]!.message;
}

describe('limits.message_size', () => {
  it('refuses a bare number too small for a message, naming bytes and the unit it lacks', () => {
    assert.equal(refusal('50'), '50 has no unit, so it means 50 bytes, below the minimum of 1000 bytes: write a unit, e.g. 50MB or 50KB');
    assert.equal(refusal('"50"'), '"50" has no unit, so it means 50 bytes, below the minimum of 1000 bytes: write a unit, e.g. 50MB or 50KB');
    assert.match(refusal('999'), /^999 has no unit, so it means 999 bytes/);
  });

  it('refuses a size with a unit below the minimum, and 0', () => {
    assert.equal(refusal('100B'), 'must be at least 1000 bytes, got "100B"');
    assert.equal(refusal('0.5KB'), 'must be at least 1000 bytes, got "0.5KB"');
    assert.equal(refusal('0'), 'must be at least 1000 bytes, got 0');
  });

  it('keeps what a real MTA config says: units, and byte counts as Postfix writes them', () => {
    for (const [text, bytes] of [['50MB', 50 * 1024 ** 2], ['1KB', 1024], ['1000', 1000], ['1000B', 1000], ['10240000', 10_240_000], ['1GB', 1024 ** 3]] as const) {
      assert.equal(parseConfig(config(text)).limits.message_size, bytes, text);
    }
  });

  it('run and reload see the same refusal, located as FILE:LINE:COL', () => {
    assert.throws(
      () => parseConfig(config('50'), 'p.yaml'),
      (e: unknown) => e instanceof ConfigError && e.message.startsWith('p.yaml:8:17: limits.message_size: 50 has no unit'),
    );
  });

  it('size helpers: bare numbers and how a minimum is named', () => {
    assert.deepEqual(['50', ' 50 ', '1.5', 50, '50MB', '50 B'].map(isBareNumber), [true, true, true, true, false, false]);
    assert.deepEqual([1000, 1024, 1536, 50 * 1024 ** 2, 1024 ** 3].map(formatSize), ['1000 bytes', '1KB', '1536 bytes', '50MB', '1GB']);
  });
});
