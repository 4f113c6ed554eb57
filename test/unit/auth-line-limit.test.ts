// The command-line length rule for AUTH (RFC 4954 §4: 12288 octets) against every other
// command (limits.line_length), on the bytes the line splitter hands the session.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUTH_LINE_MAX } from '../../src/auth/exchange.js';
import { isAuthCommand, splitterLineMax, withinLineLength } from '../../src/auth/line-limit.js';
import { LineReader, type Line } from '../../src/smtp/lines.js';

const line = (text: string): Line => ({ text: Buffer.from(text, 'latin1'), bareLf: false, tooLong: false });

describe('isAuthCommand', () => {
  it('takes the AUTH verb in any case, alone or followed by a space', () => {
    for (const t of ['AUTH PLAIN x', 'auth plain', 'AuTh LOGIN', 'AUTH']) assert.equal(isAuthCommand(Buffer.from(t)), true, t);
    for (const t of ['AUTHX PLAIN', 'AUT', 'MAIL FROM:<AUTH>', ' AUTH PLAIN', 'NOOP AUTH', 'AUTH\tPLAIN', '']) assert.equal(isAuthCommand(Buffer.from(t)), false, t);
  });
});

describe('splitterLineMax', () => {
  it('reads up to 12288 where AUTH may be used, line_length elsewhere, the larger when line_length is larger', () => {
    assert.equal(splitterLineMax(4096, true), AUTH_LINE_MAX);
    assert.equal(splitterLineMax(4096, false), 4096);
    assert.equal(splitterLineMax(20000, true), 20000);
  });
});

describe('withinLineLength', () => {
  const long = (verb: string, n: number) => line(`${verb} ${'A'.repeat(n - verb.length - 1)}`);

  it('keeps an AUTH line over line_length, and refuses any other command over it', () => {
    const auth = long('AUTH PLAIN', 9000);
    assert.equal(withinLineLength(auth, 4096, false), auth);
    const noop = withinLineLength(long('NOOP', 5000), 4096, false);
    assert.deepEqual(noop, { text: Buffer.alloc(0), bareLf: false, tooLong: true });
    // At the limit exactly: taken.
    assert.equal(withinLineLength(long('NOOP', 4096), 4096, false).tooLong, false);
  });

  it('leaves SASL response lines to the exchange, and lines the splitter dropped as they are', () => {
    const response = line('B'.repeat(9000));
    assert.equal(withinLineLength(response, 4096, true), response);
    assert.equal(withinLineLength(response, 4096, false).tooLong, true);
    const dropped: Line = { text: Buffer.alloc(0), bareLf: true, tooLong: true };
    assert.equal(withinLineLength(dropped, 4096, false), dropped);
  });

  it('with the splitter: memory bounded by the larger limit, past it every line is dropped, AUTH too', () => {
    const r = new LineReader();
    const max = splitterLineMax(4096, true);
    r.push(Buffer.from(`AUTH PLAIN ${'Q'.repeat(AUTH_LINE_MAX)}`));
    // No line end yet: what was read is over the bound, so it is dropped, not kept.
    assert.equal(r.readLine(max), null);
    assert.ok(r.length <= 1, `${r.length} bytes kept`);
    r.push(Buffer.from('\r\nNOOP\r\n'));
    const first = r.readLine(max)!;
    assert.equal(withinLineLength(first, 4096, false).tooLong, true);
    assert.equal(withinLineLength(r.readLine(max)!, 4096, false).text.toString(), 'NOOP');
  });
});
