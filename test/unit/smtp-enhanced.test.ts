import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { C250Completed, C421ServiceUnavail, C452StorageFull, C503BadCmdSeq, C530SecurityRequired } from '../../src/smtp/codes.js';
import { enhanced, SeOther00, SePol7Other0, SeProto5BadCmdOrSeq1, SeProto5TooManyRcpts3 } from '../../src/smtp/enhanced.js';
import { smtpError } from '../../src/smtp/errors.js';

describe('enhanced status codes (RFC 3463)', () => {
  it('take their class from the reply code', () => {
    assert.equal(enhanced(C250Completed, SeOther00), '2.0.0');
    assert.equal(enhanced(C421ServiceUnavail, SePol7Other0), '4.7.0');
    assert.equal(enhanced(C530SecurityRequired, SePol7Other0), '5.7.0');
    assert.equal(enhanced(C452StorageFull, SeProto5TooManyRcpts3), '4.5.3');
  });

  it('build the refusal line byte for byte', () => {
    const e = smtpError(C503BadCmdSeq, SeProto5BadCmdOrSeq1, 'Need MAIL command');
    assert.equal(e.smtpCode, 503);
    assert.equal(e.enhanced, '5.5.1');
    assert.equal(e.reply, '503 5.5.1 Need MAIL command\r\n');
  });
});
