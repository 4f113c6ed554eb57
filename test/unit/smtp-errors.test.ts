import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SmtpError } from '../../src/smtp/errors.js';
import { ReplyParser } from '../../src/smtp/reply.js';
import { parsePathCommand } from '../../src/smtp/command.js';

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

describe('SmtpError reply text (found by the fuzzer)', () => {
  it('client bytes quoted in a refusal never break the reply line: bare CR, control bytes, non-ASCII become ?', () => {
    // The line reader hands over a line with a bare CR (flagged, still parsed): `MAIL FROM:<a@b> X<CR>Y<NUL><ESC>ſ`.
    const line = Buffer.from([...Buffer.from('MAIL FROM:<a@b> X'), 0x0d, 0x59, 0x00, 0x1b, 0xc5, 0xbf]).toString('utf8');
    let reply = '';
    try {
      parsePathCommand(line.slice(5), 'FROM');
    } catch (e) {
      reply = (e as SmtpError).reply;
    }
    assert.equal(reply, '501 5.5.4 Bad parameter: X?Y???\r\n');
    assert.equal(new ReplyParser().push(Buffer.from(reply)).length, 1);
  });

  it('keeps HT and printable ASCII, and the line within 512 octets', () => {
    assert.equal(new SmtpError(502, '5.5.1', 'A\tB ~ not available').reply, '502 5.5.1 A\tB ~ not available\r\n');
    const long = new SmtpError(501, '5.5.4', `Bad parameter: ${'x'.repeat(5000)}`).reply;
    assert.ok(Buffer.byteLength(long) <= 512, `${Buffer.byteLength(long)} octets`);
    assert.match(long, /^501 5\.5\.4 Bad parameter: x+\.\.\.\r\n$/);
    assert.equal(new SmtpError(501, '5.5.4', 'x'.repeat(5000)).text.length, 5000, 'the text itself (logs) is untouched');
  });
});
