import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SmtpError } from '../../src/smtp/errors.js';
import { ReplyParser } from '../../src/smtp/reply.js';

describe('SmtpError', () => {
  it('carries code, enhanced code and text', () => {
    const e = new SmtpError(501, '5.5.4', 'Syntax: BDAT chunk-size [LAST]');
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'SmtpError');
    assert.equal(e.smtpCode, 501);
    assert.equal(e.enhanced, '5.5.4');
    assert.equal(e.text, 'Syntax: BDAT chunk-size [LAST]');
    assert.equal(e.message, '501 5.5.4 Syntax: BDAT chunk-size [LAST]');
  });

  it('reply is one CRLF-terminated line that parses back', () => {
    const e = new SmtpError(550, '5.7.1', 'Relaying denied');
    assert.equal(e.reply, '550 5.7.1 Relaying denied\r\n');
    const [r] = new ReplyParser().push(Buffer.from(e.reply));
    assert.equal(r!.code, 550);
    assert.match(r!.lines[0]!, /^5\.7\.1 /);
  });
});
