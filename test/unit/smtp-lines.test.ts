import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineReader, type Line } from '../../src/smtp/lines.js';
import { splitAt } from '../helpers/chunks.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

interface Got {
  text: string;
  bareLf: boolean;
  tooLong: boolean;
}

const view = (l: Line): Got => ({ text: l.text.toString('latin1'), bareLf: l.bareLf, tooLong: l.tooLong });

/** Every line currently available. */
function drain(r: LineReader, max: number): Got[] {
  const out: Got[] = [];
  for (let l = r.readLine(max); l !== null; l = r.readLine(max)) out.push(view(l));
  return out;
}

/** Feeds `chunks` one at a time, draining after each, as a session would. */
function feed(chunks: Buffer[], max: number): { lines: Got[]; reader: LineReader } {
  const r = new LineReader();
  const lines: Got[] = [];
  for (const c of chunks) {
    r.push(c);
    lines.push(...drain(r, max));
  }
  return { lines, reader: r };
}

const ok = (text: string): Got => ({ text, bareLf: false, tooLong: false });
const bare = (text: string): Got => ({ text, bareLf: true, tooLong: false });
const long = (bareLf = false): Got => ({ text: '', bareLf, tooLong: true });

describe('LineReader: CRLF lines', () => {
  it('returns CRLF-terminated lines without the terminator', () => {
    const { lines, reader } = feed([b('EHLO client.example\r\nMAIL FROM:<a@b>\r\nQUIT\r\n')], 512);
    assert.deepEqual(lines, [ok('EHLO client.example'), ok('MAIL FROM:<a@b>'), ok('QUIT')]);
    assert.equal(reader.length, 0);
  });

  it('returns null until the line is complete and keeps the partial bytes', () => {
    const r = new LineReader();
    r.push(b('NOO'));
    assert.equal(r.readLine(512), null);
    assert.equal(r.length, 3);
    r.push(b('P\r'));
    assert.equal(r.readLine(512), null);
    assert.equal(r.length, 5);
    r.push(b('\n'));
    assert.deepEqual(view(r.readLine(512)!), ok('NOOP'));
    assert.equal(r.readLine(512), null);
    assert.equal(r.length, 0);
  });

  it('an empty reader yields null, also after an empty chunk', () => {
    const r = new LineReader();
    assert.equal(r.readLine(512), null);
    r.push(Buffer.alloc(0));
    assert.equal(r.readLine(512), null);
    assert.equal(r.length, 0);
  });

  it('returns an empty line for a lone CRLF', () => {
    assert.deepEqual(feed([b('\r\n\r\nX\r\n')], 512).lines, [ok(''), ok(''), ok('X')]);
  });

  it('keeps arbitrary (non-CR/LF) bytes of the line, including UTF-8 and NUL', () => {
    const r = new LineReader();
    const text = Buffer.concat([b('MAIL FROM:<'), Buffer.from('jöran@exämple.org', 'utf8'), b('>\x00\xff')]);
    r.push(Buffer.concat([text, b('\r\n')]));
    const l = r.readLine(512)!;
    assert.ok(l.text.equals(text));
    assert.equal(l.bareLf, false);
  });
});

describe('LineReader: bare LF and CR', () => {
  it('flags a line ended by a bare LF', () => {
    assert.deepEqual(feed([b('NOOP\nQUIT\r\n')], 512).lines, [bare('NOOP'), ok('QUIT')]);
  });

  it('flags an empty line ended by a bare LF', () => {
    assert.deepEqual(feed([b('\n')], 512).lines, [bare('')]);
  });

  it('flags a CR inside a line', () => {
    assert.deepEqual(feed([b('NO\rOP\r\n')], 512).lines, [bare('NO\rOP')]);
  });

  it('flags a CR right before the CRLF (CR CR LF)', () => {
    assert.deepEqual(feed([b('NOOP\r\r\n')], 512).lines, [bare('NOOP\r')]);
  });

  it('flags a CR at the start of a line', () => {
    assert.deepEqual(feed([b('\rRSET\r\n')], 512).lines, [bare('\rRSET')]);
  });

  it('pairs a CR at the end of one chunk with the LF at the start of the next', () => {
    const { lines, reader } = feed([b('EHLO x\r'), b('\nQUIT\r\n')], 512);
    assert.deepEqual(lines, [ok('EHLO x'), ok('QUIT')]);
    assert.equal(reader.length, 0);
  });

  it('a CR at the end of one chunk followed by a non-LF is a bare CR', () => {
    assert.deepEqual(feed([b('EHLO x\r'), b('y\r\n')], 512).lines, [bare('EHLO x\ry')]);
  });

  it('a lone CR chunk between two chunks still pairs with the following LF', () => {
    assert.deepEqual(feed([b('DATA'), b('\r'), b('\n')], 512).lines, [ok('DATA')]);
  });
});

describe('LineReader: chunk boundaries', () => {
  const input = b('EHLO a.example\r\nMAIL FROM:<x@y> SIZE=10\nRCPT TO:<z@w>\r\nBA\rD\r\n\r\nQUIT\r\n');
  const expected = feed([input], 512).lines;

  it('the reference parse is as expected', () => {
    assert.deepEqual(expected, [
      ok('EHLO a.example'),
      bare('MAIL FROM:<x@y> SIZE=10'),
      ok('RCPT TO:<z@w>'),
      bare('BA\rD'),
      ok(''),
      ok('QUIT'),
    ]);
  });

  it('gives the same lines for a split at every byte position', () => {
    for (let i = 0; i <= input.length; i++) {
      const { lines, reader } = feed([input.subarray(0, i), input.subarray(i)], 512);
      assert.deepEqual(lines, expected, `split at ${i}`);
      assert.equal(reader.length, 0);
    }
  });

  it('gives the same lines for every pair of split positions', () => {
    for (let i = 0; i <= input.length; i++) {
      for (let j = i; j <= input.length; j++) {
        const chunks = [input.subarray(0, i), input.subarray(i, j), input.subarray(j)];
        assert.deepEqual(feed(chunks, 512).lines, expected, `split at ${i},${j}`);
      }
    }
  });

  it('gives the same lines when fed byte by byte', () => {
    const chunks = [...input].map((x) => Buffer.from([x]));
    assert.deepEqual(feed(chunks, 512).lines, expected);
  });

  it('gives the same lines when pushed all at once and drained later', () => {
    const r = new LineReader();
    for (const x of input) r.push(Buffer.from([x]));
    assert.deepEqual(drain(r, 512), expected);
  });

  it('property: random lines split randomly parse the same as in one chunk', () => {
    const lineArb = fc.array(fc.constantFrom(0x41, 0x20, 0x2e, 0x0d, 0x0a, 0xc3, 0x00), { maxLength: 20 });
    fc.assert(
      fc.property(
        fc.array(lineArb, { maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (raw, cuts) => {
          const data = Buffer.from(raw.flat());
          const whole = feed([data], 12);
          const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((x, y) => x - y);
          const split = feed(splitAt(data, points), 12);
          // A too-long line is detected at different times depending on chunking, but the
          // reported lines must agree.
          assert.deepEqual(split.lines, whole.lines);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('LineReader: over-long lines', () => {
  it('reports a line over max once as tooLong, then reads on', () => {
    const { lines } = feed([b('x'.repeat(600) + '\r\nQUIT\r\n')], 512);
    assert.deepEqual(lines, [long(), ok('QUIT')]);
  });

  it('accepts exactly max bytes and rejects max+1 (one chunk)', () => {
    for (const max of [0, 1, 8, 512]) {
      assert.deepEqual(feed([b('a'.repeat(max) + '\r\n')], max).lines, [ok('a'.repeat(max))], `max=${max}`);
      assert.deepEqual(feed([b('a'.repeat(max + 1) + '\r\n')], max).lines, [long()], `max+1=${max + 1}`);
    }
  });

  it('accepts exactly max bytes and rejects max+1 (byte by byte)', () => {
    for (const max of [4, 5, 8, 64]) {
      for (const [n, want] of [
        [max, [ok('a'.repeat(max))]],
        [max + 1, [long()]],
        [max + 2, [long()]],
      ] as const) {
        const chunks = [...b('a'.repeat(n) + '\r\nQUIT\r\n')].map((x) => Buffer.from([x]));
        assert.deepEqual(feed(chunks, max).lines, [...want, ok('QUIT')], `max=${max} n=${n}`);
      }
    }
  });

  it('the max boundary holds at every split point, for CRLF and for bare LF', () => {
    const max = 8;
    for (const n of [max - 1, max, max + 1, max + 2, 2 * max + 3]) {
      for (const eol of ['\r\n', '\n']) {
        const input = b('a'.repeat(n) + eol + 'NEXT\r\n');
        const isBare = eol === '\n';
        const want: Got = n > max ? long(isBare) : { text: 'a'.repeat(n), bareLf: isBare, tooLong: false };
        for (let i = 0; i <= input.length; i++) {
          const { lines } = feed([input.subarray(0, i), input.subarray(i)], max);
          assert.deepEqual(lines, [want, ok('NEXT')], `n=${n} eol=${JSON.stringify(eol)} split=${i}`);
        }
      }
    }
  });

  it('keeps memory bounded: 1 MB without LF, in 1 KB chunks', () => {
    const r = new LineReader();
    const max = 512;
    const chunk = Buffer.alloc(1024, 0x61);
    for (let i = 0; i < 1024; i++) {
      r.push(chunk);
      assert.equal(r.readLine(max), null);
      assert.ok(r.length <= max + 1, `buffer grew to ${r.length}`);
    }
    r.push(b('\r\nQUIT\r\n'));
    assert.deepEqual(drain(r, max), [long(), ok('QUIT')]);
    assert.equal(r.length, 0);
  });

  it('keeps memory bounded: 1 MB without LF in one chunk', () => {
    const r = new LineReader();
    r.push(Buffer.alloc(1 << 20, 0x61));
    assert.equal(r.readLine(512), null);
    assert.ok(r.length <= 1, `buffer is ${r.length}`);
    r.push(b('tail\r\nQUIT\r\n'));
    assert.deepEqual(drain(r, 512), [long(), ok('QUIT')]);
  });

  it('keeps memory bounded: 1 MB of CRs without LF', () => {
    const r = new LineReader();
    for (let i = 0; i < 256; i++) {
      r.push(Buffer.alloc(4096, 0x0d));
      assert.equal(r.readLine(100), null);
      assert.ok(r.length <= 101);
    }
    r.push(b('\nNOOP\r\n'));
    assert.deepEqual(drain(r, 100), [long(), ok('NOOP')]);
  });

  it('reports tooLong only once for a long line fed in many chunks', () => {
    const chunks = [...Array(50)].map(() => b('y'.repeat(100)));
    chunks.push(b('\r\n'));
    const { lines, reader } = feed(chunks, 64);
    assert.deepEqual(lines, [long()]);
    assert.equal(reader.length, 0);
  });

  it('overlong: bytes of a line past the limit so far, 0 once it ends or within the limit', () => {
    const r = new LineReader();
    r.push(b('a'.repeat(10)));
    assert.equal(r.readLine(10), null);
    assert.equal(r.overlong, 0, 'within the limit (its CR may still come)');
    r.push(b('aa'));
    assert.equal(r.readLine(10), null);
    assert.equal(r.overlong, 12);
    for (let i = 0; i < 10; i++) {
      r.push(b('z'.repeat(100) + (i === 9 ? '\r' : '')));
      assert.equal(r.readLine(10), null);
    }
    assert.equal(r.overlong, 1013, 'dropped bytes count, and a kept trailing CR');
    r.push(b('\nOK\r\n'));
    assert.deepEqual(drain(r, 10), [long(false), ok('OK')]);
    assert.equal(r.overlong, 0);
    r.push(b('q'.repeat(50)));
    assert.equal(r.readLine(10), null);
    assert.equal(r.overlong, 50);
    r.clear();
    assert.equal(r.overlong, 0, 'clear forgets it');
  });

  it('a trailing CR kept while discarding pairs with the next LF (not bare)', () => {
    const r = new LineReader();
    r.push(b('z'.repeat(40) + '\r'));
    assert.equal(r.readLine(10), null);
    assert.equal(r.length, 1);
    r.push(b('\nOK\r\n'));
    assert.deepEqual(drain(r, 10), [long(false), ok('OK')]);
  });

  it('a discarded long line ended by a bare LF is flagged bare', () => {
    const r = new LineReader();
    r.push(b('z'.repeat(40)));
    assert.equal(r.readLine(10), null);
    r.push(b('\nOK\r\n'));
    assert.deepEqual(drain(r, 10), [long(true), ok('OK')]);
  });

  it('property: tooLong iff the line exceeds max, for any chunking; buffer stays bounded', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 40 }),
        fc.nat({ max: 100 }),
        fc.boolean(),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 20 }),
        (max, n, crlf, sizes) => {
          const input = b('q'.repeat(n) + (crlf ? '\r\n' : '\n') + 'END\r\n');
          const r = new LineReader();
          const lines: Got[] = [];
          let pos = 0;
          let k = 0;
          while (pos < input.length) {
            const size = sizes[k++ % sizes.length]!;
            r.push(input.subarray(pos, pos + size));
            pos += size;
            lines.push(...drain(r, max));
            // After a null readLine the reader holds at most one line's worth (+ a CR).
            assert.ok(r.length <= max + 1, `length ${r.length} > ${max + 1}`);
          }
          const first: Got = n > max ? long(!crlf) : { text: 'q'.repeat(n), bareLf: !crlf, tooLong: false };
          const end: Got = 3 > max ? long() : ok('END');
          assert.deepEqual(lines, [first, end]);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('LineReader: readBytes / takeAll / clear', () => {
  it('readBytes hands out exactly n buffered bytes (BDAT) and line reading continues', () => {
    const r = new LineReader();
    r.push(b('BDAT 5\r\nhelloQUIT\r\n'));
    assert.deepEqual(view(r.readLine(512)!), ok('BDAT 5'));
    assert.equal(r.readBytes(5)!.toString('latin1'), 'hello');
    assert.deepEqual(drain(r, 512), [ok('QUIT')]);
    assert.equal(r.length, 0);
  });

  it('readBytes returns fewer bytes when fewer are buffered, null when empty', () => {
    const r = new LineReader();
    assert.equal(r.readBytes(10), null);
    r.push(b('abc'));
    assert.equal(r.readBytes(10)!.toString('latin1'), 'abc');
    assert.equal(r.length, 0);
    assert.equal(r.readBytes(10), null);
  });

  it('readBytes(0) and negative n return null and consume nothing', () => {
    const r = new LineReader();
    r.push(b('abc'));
    assert.equal(r.readBytes(0), null);
    assert.equal(r.readBytes(-1), null);
    assert.equal(r.length, 3);
  });

  it('readBytes passes CR and LF through untouched', () => {
    const r = new LineReader();
    r.push(b('\r\n.\r\n\nx'));
    assert.equal(r.readBytes(3)!.toString('latin1'), '\r\n.');
    assert.equal(r.readBytes(100)!.toString('latin1'), '\r\n\nx');
  });

  it('readBytes across pushes: a BDAT chunk arriving in pieces', () => {
    const r = new LineReader();
    const body = 'Subject: x\r\n\r\nhi\r\n';
    r.push(b('BDAT ' + body.length + ' LAST\r\nSubj'));
    assert.deepEqual(view(r.readLine(512)!), ok(`BDAT ${body.length} LAST`));
    let need = body.length;
    const got: Buffer[] = [];
    const take = (): void => {
      const x = r.readBytes(need);
      if (x) {
        got.push(x);
        need -= x.length;
      }
    };
    take();
    r.push(b('ect: x\r\n\r\n'));
    take();
    r.push(b('hi\r\nQUIT\r\n'));
    take();
    assert.equal(need, 0);
    assert.equal(Buffer.concat(got).toString('latin1'), body);
    assert.deepEqual(drain(r, 512), [ok('QUIT')]);
  });

  it('takeAll returns everything buffered (the start of DATA) and empties the reader', () => {
    const r = new LineReader();
    r.push(b('DATA\r\nSubject: x\r\n\r\nbody'));
    assert.deepEqual(view(r.readLine(512)!), ok('DATA'));
    assert.equal(r.takeAll().toString('latin1'), 'Subject: x\r\n\r\nbody');
    assert.equal(r.length, 0);
    assert.equal(r.takeAll().length, 0);
    assert.equal(r.readLine(512), null);
  });

  it('takeAll ends discarding: the next line is not tooLong', () => {
    const r = new LineReader();
    r.push(b('x'.repeat(100)));
    assert.equal(r.readLine(10), null);
    r.takeAll();
    r.push(b('OK\r\n'));
    assert.deepEqual(drain(r, 10), [ok('OK')]);
  });

  it('clear drops the buffer, returns how many bytes were dropped', () => {
    const r = new LineReader();
    r.push(b('STARTTLS\r\nMAIL FROM:<evil@x>\r\n'));
    assert.deepEqual(view(r.readLine(512)!), ok('STARTTLS'));
    assert.equal(r.clear(), 'MAIL FROM:<evil@x>\r\n'.length);
    assert.equal(r.length, 0);
    assert.equal(r.readLine(512), null);
    assert.equal(r.clear(), 0);
  });

  it('clear ends discarding and drops a pending CR', () => {
    const r = new LineReader();
    r.push(b('x'.repeat(100) + '\r'));
    assert.equal(r.readLine(10), null);
    assert.equal(r.clear(), 1);
    r.push(b('\nEHLO y\r\n'));
    // The LF is now alone: an empty bare line, not a tooLong one.
    assert.deepEqual(drain(r, 10), [bare(''), ok('EHLO y')]);
  });
});
