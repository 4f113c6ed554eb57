import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { capSize, parseEhlo, renderEhlo, type Capabilities } from '../../src/smtp/ehlo.js';
import { ReplyParser, type Reply } from '../../src/smtp/reply.js';

function reply(s: string): Reply {
  const got = new ReplyParser().push(Buffer.from(s, 'utf8'));
  assert.equal(got.length, 1);
  return got[0]!;
}

const caps = (s: string): Capabilities => parseEhlo(reply(s));

describe('parseEhlo', () => {
  it('parses a typical Postfix EHLO reply, ignoring the greeting line', () => {
    const got = caps(
      '250-mx.example.org\r\n' +
        '250-PIPELINING\r\n' +
        '250-SIZE 10240000\r\n' +
        '250-VRFY\r\n' +
        '250-ETRN\r\n' +
        '250-STARTTLS\r\n' +
        '250-AUTH PLAIN LOGIN\r\n' +
        '250-ENHANCEDSTATUSCODES\r\n' +
        '250-8BITMIME\r\n' +
        '250-DSN\r\n' +
        '250-SMTPUTF8\r\n' +
        '250 CHUNKING\r\n',
    );
    assert.deepEqual(
      got,
      new Map([
        ['PIPELINING', []],
        ['SIZE', ['10240000']],
        ['VRFY', []],
        ['ETRN', []],
        ['STARTTLS', []],
        ['AUTH', ['PLAIN', 'LOGIN']],
        ['ENHANCEDSTATUSCODES', []],
        ['8BITMIME', []],
        ['DSN', []],
        ['SMTPUTF8', []],
        ['CHUNKING', []],
      ]),
    );
    assert.ok(!got.has('MX.EXAMPLE.ORG'));
  });

  it('a single-line reply has no capabilities', () => {
    assert.deepEqual(caps('250 mx.example.org\r\n'), new Map());
  });

  it('treats `AUTH=LOGIN` as an alias of `AUTH LOGIN`', () => {
    assert.deepEqual(caps('250-mx\r\n250 AUTH=LOGIN\r\n'), new Map([['AUTH', ['LOGIN']]]));
    assert.deepEqual(caps('250-mx\r\n250 AUTH=PLAIN LOGIN\r\n'), new Map([['AUTH', ['PLAIN', 'LOGIN']]]));
  });

  it('both AUTH forms together give one AUTH entry', () => {
    const got = caps('250-mx\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n250 8BITMIME\r\n');
    assert.deepEqual(got.get('AUTH'), ['PLAIN', 'LOGIN']);
    assert.equal(got.size, 2);
  });

  it('keywords are case-insensitive (upper-cased); parameters keep their case', () => {
    const got = caps('250-mx\r\n250-pipelining\r\n250-Size 1000\r\n250 auth Plain login\r\n');
    assert.deepEqual(
      got,
      new Map([
        ['PIPELINING', []],
        ['SIZE', ['1000']],
        ['AUTH', ['Plain', 'login']],
      ]),
    );
  });

  it('collapses extra spaces and skips blank lines', () => {
    assert.deepEqual(
      caps('250-mx\r\n250-  SIZE   1000  \r\n250-\r\n250-   \r\n250 X-FOO  a  b\r\n'),
      new Map([
        ['SIZE', ['1000']],
        ['X-FOO', ['a', 'b']],
      ]),
    );
  });

  it('SIZE with and without a value', () => {
    assert.deepEqual(caps('250-mx\r\n250 SIZE\r\n').get('SIZE'), []);
    assert.deepEqual(caps('250-mx\r\n250 SIZE 52428800\r\n').get('SIZE'), ['52428800']);
  });
});

describe('capSize', () => {
  const size = (line: string | null): number | null =>
    capSize(caps(line === null ? '250-mx\r\n250 8BITMIME\r\n' : `250-mx\r\n250 ${line}\r\n`));

  it('returns the advertised limit', () => {
    assert.equal(size('SIZE 10240000'), 10240000);
    assert.equal(size('size 1'), 1);
    assert.equal(size('SIZE 9007199254740991'), Number.MAX_SAFE_INTEGER);
  });

  it('null when SIZE is absent, has no value, or is 0 (no fixed limit)', () => {
    assert.equal(size(null), null);
    assert.equal(size('SIZE'), null);
    assert.equal(size('SIZE 0'), null);
  });

  it('null for a value that is not a plain decimal number', () => {
    for (const v of ['abc', '-5', '1.5', '1e3', '0x10', '+10', '10MB', 'Infinity', '9007199254740993', '99999999999999999999']) {
      assert.equal(size(`SIZE ${v}`), null, v);
    }
  });
});

describe('renderEhlo', () => {
  it('renders greeting and capabilities as a multi-line 250 reply', () => {
    const c: Capabilities = new Map([
      ['PIPELINING', []],
      ['SIZE', ['1000']],
      ['AUTH', ['PLAIN', 'LOGIN']],
      ['CHUNKING', []],
    ]);
    assert.equal(
      renderEhlo('postern.example Hello client', c),
      '250-postern.example Hello client\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n',
    );
  });

  it('renders a greeting alone as a single line', () => {
    assert.equal(renderEhlo('postern.example', new Map()), '250 postern.example\r\n');
  });

  it('round-trips through the reply parser and parseEhlo', () => {
    const c: Capabilities = new Map([
      ['SIZE', []],
      ['8BITMIME', []],
      ['AUTH', ['PLAIN', 'LOGIN', 'XOAUTH2']],
      ['X-EXT', ['a=b', 'c']],
    ]);
    const r = reply(renderEhlo('mx', c));
    assert.equal(r.code, 250);
    assert.deepEqual(parseEhlo(r), c);
  });

  it('parsing a server reply and rendering it again reproduces it (canonical form)', () => {
    const s = '250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n250 CHUNKING\r\n';
    const r = reply(s);
    assert.equal(renderEhlo(r.lines[0]!, parseEhlo(r)), s);
  });

  it('property: render then parse is the identity', () => {
    const keyArb = fc.stringMatching(/^[A-Z0-9][A-Z0-9-]{0,12}$/);
    const paramArb = fc.stringMatching(/^[!-~]{1,10}$/);
    const capsArb = fc
      .uniqueArray(fc.tuple(keyArb, fc.array(paramArb, { maxLength: 4 })), { selector: ([k]) => k, maxLength: 12 })
      .map((entries) => new Map(entries));
    const greetingArb = fc.stringMatching(/^[!-~][ -~]{0,30}$/);
    fc.assert(
      fc.property(greetingArb, capsArb, (greeting, c) => {
        const r = reply(renderEhlo(greeting, c));
        assert.equal(r.lines[0], greeting);
        assert.deepEqual(parseEhlo(r), c);
      }),
      { numRuns: 500 },
    );
  });
});
