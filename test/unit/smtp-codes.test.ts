import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCompletion, isPermanentRefusal, isRefusal } from '../../src/smtp/codes.js';

describe('reply classes (RFC 5321 §4.2.1)', () => {
  it('tells completion, refusal and permanent refusal by the first digit', () => {
    const table: [number, boolean, boolean, boolean][] = [
      // code, completion, refusal, permanent
      [220, true, false, false],
      [250, true, false, false],
      [299, true, false, false],
      [334, false, false, false],
      [354, false, false, false],
      [421, false, true, false],
      [452, false, true, false],
      [500, false, true, true],
      [554, false, true, true],
    ];
    for (const [code, completion, refusal, permanent] of table) {
      assert.equal(isCompletion(code), completion, `${code} completion`);
      assert.equal(isRefusal(code), refusal, `${code} refusal`);
      assert.equal(isPermanentRefusal(code), permanent, `${code} permanent`);
    }
  });
});
