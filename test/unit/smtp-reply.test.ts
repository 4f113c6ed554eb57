import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ReplyParser,
  ReplyParseError,
  formatReply,
  replyText,
  type Reply,
} from '../../src/smtp/reply.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

interface Got {
  code: number;
  lines: string[];
  raw: string;
}

const view = (r: Reply): Got => ({ code: r.code, lines: r.lines, raw: r.raw.toString('latin1') });

function feed(chunks: Buffer[], p = new ReplyParser()): Got[] {
  const out: Got[] = [];
  for (const c of chunks) out.push(...p.push(c).map(view));
  return out;
}

function parseOne(s: string): Reply {
  const got = new ReplyParser().push(b(s));
  assert.equal(got.length, 1);
  return got[0]!;
}

function throwsParse(chunks: Buffer[], message: RegExp): void {
  assert.throws(
    () => feed(chunks),
    (e: unknown) => {
      assert.ok(e instanceof ReplyParseError, `not a ReplyParseError: ${String(e)}`);
      assert.equal(e.code, 'REPLY_SYNTAX');
      assert.equal(e.name, 'ReplyParseError');
      assert.match(e.message, message);
      assert.equal(typeof e.line, 'string');
      return true;
    },
  );
}

describe('ReplyParser: well-formed replies', () => {
  it('parses a single-line reply', () => {
    assert.deepEqual(feed([b('220 mx.example ESMTP Postfix\r\n')]), [
      { code: 220, lines: ['mx.example ESMTP Postfix'], raw: '220 mx.example ESMTP Postfix\r\n' },
    ]);
  });

  it('parses a multi-line reply into one Reply', () => {
    const s = '250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 CHUNKING\r\n';
    assert.deepEqual(feed([b(s)]), [
      { code: 250, lines: ['mx.example', 'PIPELINING', 'SIZE 10240000', 'CHUNKING'], raw: s },
    ]);
  });

  it('accepts a code with no text: `250`', () => {
    assert.deepEqual(feed([b('250\r\n')]), [{ code: 250, lines: [''], raw: '250\r\n' }]);
  });

  it('accepts `250 ` and `250-` with empty text', () => {
    assert.deepEqual(feed([b('250-\r\n250 \r\n')]), [{ code: 250, lines: ['', ''], raw: '250-\r\n250 \r\n' }]);
  });

  it('keeps the text after the separator verbatim (leading/trailing spaces)', () => {
    assert.deepEqual(parseOne('250  two  spaces \r\n').lines, [' two  spaces ']);
  });

  it('returns several replies from one chunk, each with its own raw bytes', () => {
    const s = '250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n';
    assert.deepEqual(feed([b(s)]), [
      { code: 250, lines: ['2.1.0 Ok'], raw: '250 2.1.0 Ok\r\n' },
      { code: 250, lines: ['2.1.5 Ok'], raw: '250 2.1.5 Ok\r\n' },
      { code: 354, lines: ['End data with <CR><LF>.<CR><LF>'], raw: '354 End data with <CR><LF>.<CR><LF>\r\n' },
    ]);
  });

  it('returns nothing for an incomplete reply and reports it as pending', () => {
    const p = new ReplyParser();
    assert.deepEqual(p.push(b('250-first\r\n250 sec')), []);
    assert.equal(p.pending, '250-first\r\n250 sec'.length);
    assert.deepEqual(p.push(b('ond\r\n250 x')).map(view), [
      { code: 250, lines: ['first', 'second'], raw: '250-first\r\n250 second\r\n' },
    ]);
    assert.equal(p.pending, 5);
    assert.deepEqual(p.push(b('\r\n')).map(view), [{ code: 250, lines: ['x'], raw: '250 x\r\n' }]);
    assert.equal(p.pending, 0);
  });

  it('accepts a bare LF line ending and keeps it in raw', () => {
    assert.deepEqual(feed([b('250-a\n250 b\n')]), [{ code: 250, lines: ['a', 'b'], raw: '250-a\n250 b\n' }]);
  });

  it('preserves raw bytes exactly (UTF-8, invalid UTF-8, NUL)', () => {
    const raw = Buffer.concat([b('250-héllo wörld\r\n250 '), Buffer.from([0xff, 0xfe, 0x00, 0x80]), b('\r\n')]);
    const p = new ReplyParser();
    const [r] = p.push(raw);
    assert.ok(r);
    assert.ok(r.raw.equals(raw));
    assert.equal(r.lines[0], 'héllo wörld');
  });

  it('raw of a reply split over chunks is the concatenation of its bytes', () => {
    const raw = Buffer.concat([b('250-ü'), Buffer.from([0xc3]), Buffer.from([0xbc, 0xff]), b('\r\n250 end\r\n')]);
    for (let i = 0; i <= raw.length; i++) {
      const p = new ReplyParser();
      const got = [...p.push(raw.subarray(0, i)), ...p.push(raw.subarray(i))];
      assert.equal(got.length, 1, `split at ${i}`);
      assert.ok(got[0]!.raw.equals(raw), `split at ${i}`);
    }
  });

  it('raw stays intact after the parser is fed more data', () => {
    const p = new ReplyParser();
    const [first] = p.push(b('250 one\r\n250-tw'));
    p.push(b('o\r\n250 three\r\n'));
    p.push(b('550 five\r\n'));
    assert.equal(first!.raw.toString(), '250 one\r\n');
  });

  it('parses the same replies for a split at every byte position and byte by byte', () => {
    const s = b('220 hi\r\n250-mx\r\n250-8BITMIME\r\n250 SIZE\r\n250\r\n550 5.1.1 No such user\r\n354 go\n');
    const whole = feed([s]);
    assert.equal(whole.length, 5);
    for (let i = 0; i <= s.length; i++) {
      assert.deepEqual(feed([s.subarray(0, i), s.subarray(i)]), whole, `split at ${i}`);
      for (let j = i; j <= s.length; j += 3) {
        assert.deepEqual(feed([s.subarray(0, i), s.subarray(i, j), s.subarray(j)]), whole, `split at ${i},${j}`);
      }
    }
    assert.deepEqual(
      feed([...s].map((x) => Buffer.from([x]))),
      whole,
    );
  });

  it("a reply's line texts are made once, when first read, from its bytes", () => {
    const r = parseOne('250-first\r\n250-s\u00e9cond\r\n250 last\r\n');
    assert.equal(r.code, 250);
    const lines = r.lines;
    assert.deepEqual(lines, ['first', 'sécond', 'last']);
    assert.equal(r.lines, lines, 'the same array on every read');
  });

  it('accepts every valid code 200..559 and rejects the rest', () => {
    for (let code = 100; code <= 699; code++) {
      const s = `${code} x\r\n`;
      const valid = code >= 200 && code <= 559 && code % 100 <= 59;
      if (valid) assert.equal(parseOne(s).code, code);
      else throwsParse([b(s)], /bad reply code/);
    }
  });
});

describe('ReplyParser: errors', () => {
  it('rejects a bad code', () => {
    for (const s of ['abc ok\r\n', '2x0 ok\r\n', '25a ok\r\n', '-250 ok\r\n', ' 250 ok\r\n', '099 ok\r\n', '260 ok\r\n']) {
      throwsParse([b(s)], /bad reply code/);
    }
  });

  it('rejects a short line', () => {
    for (const s of ['\r\n', '2\r\n', '25\r\n', '\n']) throwsParse([b(s)], /too short/);
  });

  it('rejects a code change within a reply', () => {
    throwsParse([b('250-first\r\n251 second\r\n')], /code changed/);
    throwsParse([b('250-first\r\n'), b('550 second\r\n')], /code changed/);
  });

  it('rejects a missing or wrong separator', () => {
    for (const s of ['250ok\r\n', '2500\r\n', '250_ok\r\n', '250\tok\r\n', '250=ok\r\n']) {
      throwsParse([b(s)], /separator/);
    }
  });

  it('the error carries the offending line', () => {
    try {
      feed([b('250-ok\r\n250_bad\r\n')]);
      assert.fail('no throw');
    } catch (e) {
      assert.ok(e instanceof ReplyParseError);
      assert.equal(e.line, '250_bad');
    }
  });

  it('rejects an over-long line that has no end yet, bounding memory', () => {
    const p = new ReplyParser();
    assert.throws(() => {
      for (let i = 0; i < 100; i++) p.push(Buffer.alloc(1024, 0x61));
    }, /too long/);
    assert.ok(p.pending <= 8192);
  });

  it('rejects an over-long line whose LF is in the same chunk', () => {
    throwsParse([b('250 ' + 'x'.repeat(10_000) + '\r\n')], /too long/);
    throwsParse([b('250-ok\r\n250 ' + 'x'.repeat(10_000) + '\r\n')], /too long/);
  });

  it('the line-length limit does not depend on chunking', () => {
    // 4096 octets of text (code and separator included) is the limit, terminator excluded.
    const okLine = b('250 ' + 'x'.repeat(4092) + '\r\n');
    const badLine = b('250 ' + 'x'.repeat(4093) + '\r\n');
    for (const i of [0, 1, 2000, 4095, 4096, 4097, 4098, okLine.length]) {
      assert.equal(feed([okLine.subarray(0, i), okLine.subarray(i)]).length, 1, `ok line, split at ${i}`);
    }
    for (const i of [0, 1, 2000, 4096, 4097, 4098, badLine.length]) {
      throwsParse([badLine.subarray(0, i), badLine.subarray(i)], /too long/);
    }
  });

  it('rejects a reply with too many lines', () => {
    throwsParse([b('250-x\r\n'.repeat(1000) + '250 end\r\n')], /too many lines/);
  });

  it('accepts a long but sane EHLO reply (50 lines)', () => {
    const [r] = feed([b('250-x\r\n'.repeat(50) + '250 end\r\n')]);
    assert.equal(r!.lines.length, 51);
  });
});

describe('formatReply', () => {
  it('formats a single line', () => {
    assert.equal(formatReply(250, '2.0.0 Ok'), '250 2.0.0 Ok\r\n');
    assert.equal(formatReply(250, ['2.0.0 Ok']), '250 2.0.0 Ok\r\n');
  });

  it('formats a multi-line reply with `-` on all but the last line', () => {
    assert.equal(
      formatReply(250, ['postern.example', 'PIPELINING', 'SIZE 1000', 'CHUNKING']),
      '250-postern.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 CHUNKING\r\n',
    );
  });

  it('formats an empty list as the bare code', () => {
    assert.equal(formatReply(221, []), '221\r\n');
  });

  it('property: parse(formatReply(code, lines)) gives back code and lines, raw byte for byte', () => {
    const codeArb = fc
      .tuple(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 9 }))
      .map(([x, y, z]) => x * 100 + y * 10 + z);
    const textArb = fc.string({ unit: 'grapheme', maxLength: 30 }).filter((t) => !/[\r\n]/.test(t));
    fc.assert(
      fc.property(codeArb, fc.array(textArb, { minLength: 1, maxLength: 8 }), (code, lines) => {
        const s = formatReply(code, lines);
        const got = new ReplyParser().push(b(s));
        assert.equal(got.length, 1);
        assert.equal(got[0]!.code, code);
        assert.deepEqual(got[0]!.lines, lines);
        assert.equal(got[0]!.raw.toString('utf8'), s);
      }),
      { numRuns: 500 },
    );
  });
});

describe('replyText', () => {
  it('replyText is the code and the last line', () => {
    assert.equal(replyText(parseOne('250 2.0.0 Ok: queued as X\r\n')), '250 2.0.0 Ok: queued as X');
    assert.equal(replyText(parseOne('250-mx\r\n250 CHUNKING\r\n')), '250 CHUNKING');
    assert.equal(replyText(parseOne('250\r\n')), '250');
    assert.equal(replyText({ code: 421, lines: [], raw: Buffer.alloc(0) }), '421');
  });
});
