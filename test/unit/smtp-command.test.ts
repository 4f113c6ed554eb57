import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ENDS_GROUP, addressDomain, parseCommand, parsePathCommand } from '../../src/smtp/command.js';
import { SmtpError } from '../../src/smtp/errors.js';

const params = (entries: [string, string | null][]): Map<string, string | null> => new Map(entries);

function rejects(args: string, keyword: 'FROM' | 'TO', enhanced: string): void {
  assert.throws(
    () => parsePathCommand(args, keyword),
    (e: unknown) => {
      assert.ok(e instanceof SmtpError, `not an SmtpError: ${String(e)}`);
      assert.equal(e.smtpCode, 501);
      assert.equal(e.enhanced, enhanced, `${JSON.stringify(args)}: ${e.message}`);
      assert.match(e.reply, /^501 \d\.\d\.\d .*\r\n$/);
      return true;
    },
    JSON.stringify(args),
  );
}

describe('parseCommand', () => {
  it('upper-cases the verb, case-insensitively', () => {
    for (const v of ['ehlo', 'EHLO', 'Ehlo', 'eHlO']) {
      assert.deepEqual(parseCommand(`${v} client.example`), { verb: 'EHLO', args: 'client.example' });
    }
  });

  it('a verb alone has empty args', () => {
    assert.deepEqual(parseCommand('quit'), { verb: 'QUIT', args: '' });
    assert.deepEqual(parseCommand('DATA'), { verb: 'DATA', args: '' });
    assert.deepEqual(parseCommand(''), { verb: '', args: '' });
  });

  it('keeps args exactly as sent after one space', () => {
    assert.deepEqual(parseCommand('MAIL FROM:<Ab@Cd> size=1'), { verb: 'MAIL', args: 'FROM:<Ab@Cd> size=1' });
    assert.deepEqual(parseCommand('RCPT  TO:<x@y> '), { verb: 'RCPT', args: ' TO:<x@y> ' });
    assert.deepEqual(parseCommand('NOOP '), { verb: 'NOOP', args: '' });
    assert.deepEqual(parseCommand('AUTH PLAIN AGFAAGI='), { verb: 'AUTH', args: 'PLAIN AGFAAGI=' });
  });

  it('upper-cases ASCII only: non-ASCII letters never turn into a known verb', () => {
    // JavaScript's toUpperCase maps U+017F (long s) to S, U+0131 (dotless i) to I, and
    // U+FB06 (st ligature) to ST. A backend compares ASCII, so these are not commands.
    assert.notEqual(parseCommand('ſtarttls').verb, 'STARTTLS');
    assert.notEqual(parseCommand('\ufb06arttls').verb, 'STARTTLS');
    assert.notEqual(parseCommand('xclıent NAME=x').verb, 'XCLIENT');
    assert.notEqual(parseCommand('maıl FROM:<a@b>').verb, 'MAIL');
    assert.notEqual(parseCommand('quıt').verb, 'QUIT');
    assert.equal(parseCommand('ſtarttls').verb, 'ſTARTTLS');
  });
});

describe('ENDS_GROUP', () => {
  it('holds the commands that end a pipelined group', () => {
    for (const v of ['EHLO', 'HELO', 'DATA', 'VRFY', 'EXPN', 'TURN', 'QUIT', 'NOOP', 'STARTTLS', 'AUTH', 'XCLIENT']) {
      assert.ok(ENDS_GROUP.has(v), v);
    }
  });

  it('does not hold the commands that may appear anywhere in a group', () => {
    for (const v of ['MAIL', 'RCPT', 'RSET', 'BDAT', 'mail', 'quit']) assert.ok(!ENDS_GROUP.has(v), v);
  });
});

describe('parsePathCommand', () => {
  it('parses MAIL FROM with ESMTP parameters', () => {
    assert.deepEqual(parsePathCommand('FROM:<a@b> SIZE=100 BODY=8BITMIME', 'FROM'), {
      address: 'a@b',
      params: params([
        ['SIZE', '100'],
        ['BODY', '8BITMIME'],
      ]),
    });
  });

  it('parses RCPT TO', () => {
    assert.deepEqual(parsePathCommand('TO:<user@example.org>', 'TO'), { address: 'user@example.org', params: params([]) });
  });

  it('the keyword is case-insensitive', () => {
    for (const args of ['from:<a@b>', 'From:<a@b>', 'fRoM:<a@b>']) {
      assert.equal(parsePathCommand(args, 'FROM').address, 'a@b');
    }
    assert.equal(parsePathCommand('to:<a@b>', 'TO').address, 'a@b');
  });

  it('tolerates spaces after the colon: `mail from: <a@b>`', () => {
    const { verb, args } = parseCommand('mail from: <a@b>');
    assert.equal(verb, 'MAIL');
    assert.equal(parsePathCommand(args, 'FROM').address, 'a@b');
    assert.equal(parsePathCommand('TO:   <c@d> NOTIFY=NEVER', 'TO').address, 'c@d');
  });

  it('the address keeps its case', () => {
    assert.equal(parsePathCommand('FROM:<Alice.Smith@Example.ORG>', 'FROM').address, 'Alice.Smith@Example.ORG');
  });

  it('accepts the null sender <>', () => {
    assert.deepEqual(parsePathCommand('FROM:<>', 'FROM'), { address: '', params: params([]) });
    assert.deepEqual(parsePathCommand('FROM:<> SIZE=0', 'FROM'), { address: '', params: params([['SIZE', '0']]) });
  });

  it('rejects RCPT TO:<>', () => {
    rejects('TO:<>', 'TO', '5.1.3');
    rejects('TO:<> NOTIFY=NEVER', 'TO', '5.1.3');
  });

  it('strips a source route', () => {
    assert.equal(parsePathCommand('FROM:<@relay.example:user@example.org>', 'FROM').address, 'user@example.org');
    assert.equal(
      parsePathCommand('TO:<@a.example,@b.example:user@c.example> NOTIFY=NEVER', 'TO').address,
      'user@c.example',
    );
  });

  it('a source route to an empty mailbox is still an empty recipient', () => {
    rejects('TO:<@a.example:>', 'TO', '5.1.3');
  });

  it('accepts an SMTPUTF8 address: `<jöran@exämple.org> SMTPUTF8`', () => {
    assert.deepEqual(parsePathCommand('FROM:<jöran@exämple.org> SMTPUTF8', 'FROM'), {
      address: 'jöran@exämple.org',
      params: params([['SMTPUTF8', null]]),
    });
    assert.equal(parsePathCommand('TO:<用户@例子.广告>', 'TO').address, '用户@例子.广告');
  });

  it('honours a quoted local part containing `>` (and escaped quotes)', () => {
    assert.deepEqual(parsePathCommand('FROM:<"a>b"@example.org> SIZE=5', 'FROM'), {
      address: '"a>b"@example.org',
      params: params([['SIZE', '5']]),
    });
    assert.equal(parsePathCommand('TO:<"a\\">b"@x.example>', 'TO').address, '"a\\">b"@x.example');
    assert.equal(parsePathCommand('TO:<"a b"@x.example>', 'TO').address, '"a b"@x.example');
    // An unterminated quote hides the closing bracket.
    rejects('TO:<"a>b@x.example>', 'TO', '5.1.7');
  });

  it('rejects a missing keyword or colon', () => {
    rejects('<a@b>', 'FROM', '5.5.4');
    rejects('FROM <a@b>', 'FROM', '5.5.4');
    rejects('FROM', 'FROM', '5.5.4');
    rejects('', 'FROM', '5.5.4');
    rejects('TO:<a@b>', 'FROM', '5.5.4');
    rejects('FROM:<a@b>', 'TO', '5.5.4');
    rejects('FROMX:<a@b>', 'FROM', '5.5.4');
  });

  it('rejects missing angle brackets', () => {
    rejects('FROM:a@b', 'FROM', '5.1.7');
    rejects('FROM:', 'FROM', '5.1.7');
    rejects('FROM: ', 'FROM', '5.1.7');
    rejects('TO:a@b>', 'TO', '5.1.7');
    rejects('FROM:<a@b', 'FROM', '5.1.7');
    rejects('TO:<', 'TO', '5.1.7');
  });

  it('rejects control characters in the address', () => {
    for (const c of ['\x00', '\x01', '\t', '\r', '\n', '\x1b', '\x1f', '\x7f']) {
      rejects(`FROM:<a${c}b@example.org>`, 'FROM', '5.1.7');
      rejects(`TO:<a@exa${c}mple.org>`, 'TO', '5.1.7');
    }
  });

  it('upper-cases parameter keywords and keeps values as sent', () => {
    assert.deepEqual(
      parsePathCommand('FROM:<a@b> size=100 body=8bitmime ret=hdrs envid=QQ+2Bx smtputf8', 'FROM').params,
      params([
        ['SIZE', '100'],
        ['BODY', '8bitmime'],
        ['RET', 'hdrs'],
        ['ENVID', 'QQ+2Bx'],
        ['SMTPUTF8', null],
      ]),
    );
    assert.deepEqual(
      parsePathCommand('TO:<c@d> notify=SUCCESS,FAILURE orcpt=rfc822;C@D', 'TO').params,
      params([
        ['NOTIFY', 'SUCCESS,FAILURE'],
        ['ORCPT', 'rfc822;C@D'],
      ]),
    );
  });

  it('splits a parameter at the first `=` only', () => {
    assert.deepEqual(parsePathCommand('FROM:<a@b> X-A=b=c AUTH=<>', 'FROM').params, params([
      ['X-A', 'b=c'],
      ['AUTH', '<>'],
    ]));
  });

  it('tolerates several spaces between and after parameters', () => {
    assert.deepEqual(parsePathCommand('FROM:<a@b>   SIZE=1    BODY=7BIT  ', 'FROM').params, params([
      ['SIZE', '1'],
      ['BODY', '7BIT'],
    ]));
    assert.deepEqual(parsePathCommand('FROM:<a@b> ', 'FROM').params, params([]));
  });

  it('rejects junk right after the closing bracket', () => {
    rejects('FROM:<a@b>SIZE=1', 'FROM', '5.5.4');
    rejects('FROM:<a@b>>', 'FROM', '5.5.4');
    rejects('TO:<a@b>x', 'TO', '5.5.4');
  });

  it('rejects malformed parameter keywords', () => {
    for (const p of ['=1', '-X=1', 'S_IZE=1', 'SIZE:1', 'é=1', '"x"']) {
      assert.throws(() => parsePathCommand(`FROM:<a@b> ${p}`, 'FROM'), SmtpError, p);
    }
    rejects('FROM:<a@b> S_IZE=1', 'FROM', '5.5.4');
  });

  it('upper-cases keywords in ASCII only: `sıze` (dotless i) is not SIZE', () => {
    assert.throws(() => parsePathCommand('FROM:<a@b> sıze=1', 'FROM'), SmtpError);
    assert.throws(() => parsePathCommand('FROM:<a@b> ſize=1', 'FROM'), SmtpError);
    assert.throws(() => parsePathCommand('FROM:<a@b> ſmtputf8', 'FROM'), SmtpError);
  });

  it('property: any plain address and parameter set round-trips', () => {
    const atom = fc.stringMatching(/^[a-zA-Z0-9!#$%&'*+\/=?^_`{|}~-]{1,10}$/);
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
    const addr = fc.tuple(atom, fc.array(label, { minLength: 1, maxLength: 3 })).map(([l, d]) => `${l}@${d.join('.')}`);
    const key = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9-]{0,10}$/);
    const value = fc.option(fc.stringMatching(/^[!-<>-~]{0,12}$/), { nil: null });
    fc.assert(
      fc.property(addr, fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k.toUpperCase(), maxLength: 5 }), (a, ps) => {
        const text = ps.map(([k, v]) => (v === null ? k : `${k}=${v}`)).join(' ');
        for (const kw of ['FROM', 'TO'] as const) {
          const got = parsePathCommand(`${kw}:<${a}>${text ? ' ' + text : ''}`, kw);
          assert.equal(got.address, a);
          assert.deepEqual(got.params, new Map(ps.map(([k, v]) => [k.toUpperCase(), v])));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('property: never throws anything but SmtpError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.constantFrom('FROM', 'TO'), (s, kw) => {
        try {
          const r = parsePathCommand(`${kw}:${s}`, kw);
          assert.ok(!/[\x00-\x1f\x7f]/.test(r.address));
        } catch (e) {
          assert.ok(e instanceof SmtpError, String(e));
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('addressDomain', () => {
  it('returns the lower-cased domain after the last @', () => {
    assert.equal(addressDomain('a@Example.ORG'), 'example.org');
    assert.equal(addressDomain('"a@b"@C.example'), 'c.example');
    assert.equal(addressDomain('jöran@EXÄMPLE.org'), 'exämple.org');
    assert.equal(addressDomain('user@[192.0.2.1]'), '[192.0.2.1]');
  });

  it('returns an empty string when there is no domain', () => {
    assert.equal(addressDomain(''), '');
    assert.equal(addressDomain('postmaster'), '');
    assert.equal(addressDomain('a@'), '');
  });
});
