import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DataScanner } from '../../src/smtp/data.js';
import { splitAt } from '../helpers/chunks.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

interface Fed {
  /** Global offset just past the terminator, or -1. */
  end: number;
  /** Index of the chunk the terminator ended in, or -1. */
  chunk: number;
  /** `end` as returned by scan() for that chunk. */
  local: number;
  bare: boolean;
  bytes: number;
}

/** Feeds chunks until the scanner reports an end (a session stops scanning there). */
function feed(chunks: Uint8Array[], scanner = new DataScanner()): Fed {
  let offset = 0;
  for (let k = 0; k < chunks.length; k++) {
    const c = chunks[k]!;
    const r = scanner.scan(c);
    assert.equal(r.bare, scanner.bare, 'result.bare mirrors scanner.bare');
    if (r.end !== -1) {
      assert.ok(r.end > 0 && r.end <= c.length, `end ${r.end} inside chunk of ${c.length}`);
      return { end: offset + r.end, chunk: k, local: r.end, bare: r.bare, bytes: scanner.bytes };
    }
    offset += c.length;
  }
  return { end: -1, chunk: -1, local: -1, bare: scanner.bare, bytes: scanner.bytes };
}

const bytewise = (data: Buffer): Buffer[] => [...data].map((x) => Buffer.from([x]));

describe('DataScanner: finding CRLF.CRLF', () => {
  it('finds the terminator in one chunk', () => {
    const msg = b('Subject: hi\r\n\r\nHello\r\n.\r\n');
    const s = new DataScanner();
    assert.deepEqual(s.scan(msg), { end: msg.length, bare: false });
    assert.equal(s.bytes, msg.length - 3);
  });

  it('end is just past the terminator so pipelined bytes are left over', () => {
    const body = 'Subject: hi\r\n\r\nHello\r\n';
    const chunk = b(body + '.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n');
    const s = new DataScanner();
    const r = s.scan(chunk);
    assert.equal(r.end, body.length + 3);
    assert.equal(chunk.subarray(r.end).toString('latin1'), 'MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n');
    assert.equal(s.bytes, body.length);
    assert.equal(r.bare, false);
  });

  it('a body that begins with .CRLF is an empty message (end = 3, bytes = 0)', () => {
    const s = new DataScanner();
    assert.deepEqual(s.scan(b('.\r\nQUIT\r\n')), { end: 3, bare: false });
    assert.equal(s.bytes, 0);
  });

  it('an empty message split as ".", "\\r", "\\n"', () => {
    const r = feed([b('.'), b('\r'), b('\n')]);
    assert.deepEqual(r, { end: 3, chunk: 2, local: 1, bare: false, bytes: 0 });
  });

  it('an empty chunk changes nothing', () => {
    const s = new DataScanner();
    assert.deepEqual(s.scan(Buffer.alloc(0)), { end: -1, bare: false });
    assert.equal(s.bytes, 0);
    assert.deepEqual(s.scan(b('.\r\n')), { end: 3, bare: false });
  });

  it('CRLF.CRLF split over three chunks', () => {
    const r = feed([b('abc\r'), b('\n.'), b('\r\nQUIT\r\n')]);
    assert.deepEqual(r, { end: 8, chunk: 2, local: 2, bare: false, bytes: 5 });
  });

  it('the terminator split at every possible point (two and three chunks)', () => {
    const body = 'From: a@b\r\n\r\nline 1\r\n..dotted\r\nlast\r\n';
    const data = b(body + '.\r\nRSET\r\n');
    const want = body.length + 3;
    for (let i = 0; i <= data.length; i++) {
      const r = feed(splitAt(data, [i]));
      assert.equal(r.end, want, `split at ${i}`);
      assert.equal(r.bytes, body.length, `bytes, split at ${i}`);
      assert.equal(r.bare, false);
      for (let j = i; j <= data.length; j++) {
        const r3 = feed(splitAt(data, [i, j]));
        assert.equal(r3.end, want, `split at ${i},${j}`);
        assert.equal(r3.bytes, body.length, `bytes, split at ${i},${j}`);
        assert.equal(r3.bare, false);
      }
    }
  });

  it('the terminator found byte by byte', () => {
    const body = 'a\r\n.b\r\n\r\n';
    const data = b(body + '.\r\nQUIT\r\n');
    const r = feed(bytewise(data));
    assert.equal(r.end, body.length + 3);
    assert.equal(r.local, 1);
    assert.equal(r.bytes, body.length);
    assert.equal(r.bare, false);
  });

  it('counts bytes over several chunks when no terminator has come yet', () => {
    const s = new DataScanner();
    s.scan(b('abc\r\n'));
    s.scan(b('.'));
    s.scan(b('.x\r'));
    assert.equal(s.bytes, 9);
    assert.deepEqual(s.scan(b('\n.\r\n')), { end: 4, bare: false });
    assert.equal(s.bytes, 10);
  });

  it('dot-stuffed lines are not a terminator', () => {
    for (const body of ['..\r\n', '..text\r\n', 'a\r\n..\r\n', 'a\r\n...\r\n', 'a\r\n..\r\n..\r\n', '.x\r\n']) {
      const data = b(body);
      for (let i = 0; i <= data.length; i++) {
        assert.equal(feed(splitAt(data, [i])).end, -1, `${JSON.stringify(body)} split at ${i}`);
      }
      const r = feed([b(body + '.\r\n')]);
      assert.equal(r.end, body.length + 3, JSON.stringify(body));
      assert.equal(r.bare, false);
    }
  });

  it('a dot in the middle of a line, or CRLF + dot + text, is not a terminator', () => {
    assert.equal(feed([b('a.\r\nb . \r\n. \r\n.a\r\n')]).end, -1);
  });

  it('reset() starts a new body', () => {
    const s = new DataScanner();
    s.scan(b('a\nb\r\n.\r\n'));
    assert.equal(s.bare, true);
    s.reset();
    assert.equal(s.bare, false);
    assert.equal(s.bytes, 0);
    assert.deepEqual(s.scan(b('.\r\n')), { end: 3, bare: false });
  });

  it('reset() forgets a partial terminator', () => {
    const s = new DataScanner();
    s.scan(b('x\r\n.\r'));
    s.reset();
    // The LF now starts a new body: it is bare, not the end of `.CR`.
    assert.deepEqual(s.scan(b('\nz\r\n')), { end: -1, bare: true });
  });

  it('after an end, scanning continues at a line start (next message on the same scanner)', () => {
    const s = new DataScanner();
    const chunk = b('a\r\n.\r\n');
    const r = s.scan(chunk);
    assert.equal(r.end, chunk.length);
    s.reset();
    assert.deepEqual(s.scan(b('.\r\n')), { end: 3, bare: false });
  });
});

describe('DataScanner: bare CR / bare LF (smuggling)', () => {
  const never = ['\n.\n', '\r.\r', '\n.\r\n', '\r\n.\n', '\r.\r\n', '\n.\r', '\r\n.\r'];

  for (const seq of never) {
    it(`${JSON.stringify(seq)} never ends the body and is flagged bare`, () => {
      for (const prefix of ['', 'a', 'a\r\n']) {
        const data = b(prefix + seq + 'MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nx\r\n');
        for (let i = 0; i <= data.length; i++) {
          const r = feed(splitAt(data, [i]));
          assert.equal(r.end, -1, `${JSON.stringify(prefix + seq)} split at ${i} ended the body`);
          assert.equal(r.bare, true, `${JSON.stringify(prefix + seq)} split at ${i} not flagged`);
        }
        const r = feed(bytewise(data));
        assert.equal(r.end, -1);
        assert.equal(r.bare, true);
        assert.equal(r.bytes, data.length);
      }
    });
  }

  it('the real terminator after a smuggling attempt still ends the body, flagged bare', () => {
    const body = 'a\n.\r\nMAIL FROM:<evil@x>\r\n';
    const r = feed([b(body + '.\r\nQUIT\r\n')]);
    assert.equal(r.end, body.length + 3);
    assert.equal(r.bytes, body.length);
    assert.equal(r.bare, true);
  });

  it('flags a bare LF anywhere', () => {
    for (const body of ['\nx\r\n', 'a\nb\r\n', 'ab\n\r\n', 'a\r\n\n', '.\n', '..\n']) {
      const r = feed([b(body + '\r\n.\r\n')]);
      assert.equal(r.bare, true, JSON.stringify(body));
    }
  });

  it('flags a bare CR anywhere', () => {
    for (const body of ['\rx\r\n', 'a\rb\r\n', 'ab\r\r\n', 'a\r\n\r.x\r\n', '.\rx\r\n', '\r\r\n']) {
      const r = feed([b(body + '.\r\n')]);
      assert.equal(r.bare, true, JSON.stringify(body));
      assert.equal(r.end, body.length + 3, JSON.stringify(body));
    }
  });

  it('a CR at a chunk end followed by a non-LF in the next chunk is bare', () => {
    const r = feed([b('abc\r'), b('def\r\n.\r\n')]);
    assert.equal(r.bare, true);
    assert.equal(r.end, 4 + 8);
  });

  it('a CR at a chunk end followed by LF in the next chunk is not bare', () => {
    const r = feed([b('abc\r'), b('\ndef\r\n.\r\n')]);
    assert.equal(r.bare, false);
    assert.equal(r.end, 4 + 9);
  });

  it('".CR" at a chunk end followed by a non-LF is bare and not an end', () => {
    const r = feed([b('a\r\n.\r'), b('x\r\n')]);
    assert.equal(r.end, -1);
    assert.equal(r.bare, true);
  });

  it('CR CR LF before the dot: the CRLF is real, the first CR is bare', () => {
    const r = feed([b('a\r\r\n.\r\n')]);
    assert.equal(r.end, 7);
    assert.equal(r.bare, true);
  });

  it('only the body before the terminator counts: bare bytes after `end` are not flagged', () => {
    const s = new DataScanner();
    assert.deepEqual(s.scan(b('a\r\n.\r\nX\nY\rZ')), { end: 6, bare: false });
    assert.equal(s.bare, false);
  });

  it('bare stays set for the rest of the body', () => {
    const s = new DataScanner();
    assert.equal(s.scan(b('a\nb')).bare, true);
    assert.equal(s.scan(b('\r\nclean\r\n')).bare, true);
    assert.deepEqual(s.scan(b('.\r\n')), { end: 3, bare: true });
  });

  it('scans a long run of bare LFs / CRs in linear time', () => {
    for (const fill of [0x0a, 0x0d, 0x2e]) {
      const chunk = Buffer.alloc(2 << 20, fill);
      const s = new DataScanner();
      const t = performance.now();
      const r = s.scan(chunk);
      const ms = performance.now() - t;
      assert.equal(r.end, -1);
      assert.equal(r.bare, fill !== 0x2e);
      assert.equal(s.bytes, chunk.length);
      assert.ok(ms < 1000, `2 MB of 0x${fill.toString(16)} took ${ms.toFixed(0)} ms`);
    }
    // Alternating CR/x and LF/x (a CR or LF every other byte).
    for (const pat of ['\rx', '\nx', '\r\n\n']) {
      const chunk = b(pat.repeat((1 << 20) / pat.length));
      const t = performance.now();
      new DataScanner().scan(chunk);
      const ms = performance.now() - t;
      assert.ok(ms < 1000, `1 MB of ${JSON.stringify(pat)} took ${ms.toFixed(0)} ms`);
    }
  });
});

describe('DataScanner: properties', () => {
  // Lines drawn from an alphabet rich in dots and spaces, so that dot-stuffing matters.
  const lineArb = fc
    .array(fc.constantFrom(0x2e, 0x2e, 0x61, 0x20, 0x09, 0x00, 0xc3, 0xa9, 0x7f, 0xff), { maxLength: 12 })
    .map((bytes) => {
      // Dot-stuffing (RFC 5321 §4.5.2): a line starting with `.` gets one more.
      const line = Buffer.from(bytes);
      return line[0] === 0x2e ? Buffer.concat([b('.'), line]) : line;
    });
  const CRLF = b('\r\n');
  const bodyArb = fc.array(lineArb, { maxLength: 15 }).map((lines) => Buffer.concat(lines.flatMap((l) => [l, CRLF])));
  const trailerArb = fc.uint8Array({ maxLength: 20 }).map((x) => Buffer.from(x));
  const cutsArb = fc.array(fc.nat(), { maxLength: 10 });

  const chunked = (data: Buffer, cuts: number[]): Buffer[] =>
    splitAt(
      data,
      [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((x, y) => x - y),
    );

  it('a well-formed body ends exactly once, at the right offset, never bare', () => {
    fc.assert(
      fc.property(bodyArb, trailerArb, cutsArb, (body, trailer, cuts) => {
        const data = Buffer.concat([body, b('.\r\n'), trailer]);
        const chunks = chunked(data, cuts);
        const r = feed(chunks);
        assert.equal(r.end, body.length + 3);
        assert.equal(r.bytes, body.length);
        assert.equal(r.bare, false);
        // The local `end` leaves exactly the trailer in the last chunk scanned.
        const rest = Buffer.concat([chunks[r.chunk]!.subarray(r.local), ...chunks.slice(r.chunk + 1)]);
        assert.ok(rest.equals(trailer));
      }),
      { numRuns: 2000 },
    );
  });

  it('without the terminator a well-formed body never ends', () => {
    fc.assert(
      fc.property(bodyArb, cutsArb, (body, cuts) => {
        const r = feed(chunked(body, cuts));
        assert.equal(r.end, -1);
        assert.equal(r.bytes, body.length);
        assert.equal(r.bare, false);
      }),
      { numRuns: 1000 },
    );
  });

  it('inserting a bare LF or a bare CR into the body makes bare true; the end stays put', () => {
    fc.assert(
      fc.property(
        bodyArb.filter((x) => x.length >= 2),
        fc.nat(),
        fc.constantFrom(0x0a, 0x0d),
        trailerArb,
        cutsArb,
        (body, at, byte, trailer, cuts) => {
          // Anywhere except inside or right after the final CRLF (that would break the
          // CRLF before the dot, so there would rightly be no terminator).
          const p = at % (body.length - 1);
          const dirty = Buffer.concat([body.subarray(0, p), Buffer.from([byte]), body.subarray(p)]);
          const data = Buffer.concat([dirty, b('.\r\n'), trailer]);
          const r = feed(chunked(data, cuts));
          assert.equal(r.bare, true);
          assert.equal(r.end, dirty.length + 3);
          assert.equal(r.bytes, dirty.length);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('a bare LF right before the dot means no terminator at all', () => {
    fc.assert(
      fc.property(bodyArb, cutsArb, (body, cuts) => {
        const data = Buffer.concat([body, b('\n.\r\n'), b('more\r\n')]);
        const r = feed(chunked(data, cuts));
        assert.equal(r.end, -1);
        assert.equal(r.bare, true);
      }),
      { numRuns: 1000 },
    );
  });

  it('the result does not depend on chunking (arbitrary bytes)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x61), { maxLength: 40 }),
        cutsArb,
        (bytes, cuts) => {
          const data = Buffer.from(bytes);
          const whole = feed([data]);
          const split = feed(chunked(data, cuts));
          assert.equal(split.end, whole.end);
          assert.equal(split.bare, whole.bare);
          assert.equal(split.bytes, whole.bytes);
          // Reference: the first CRLF.CRLF, counting the start of the body as after a CRLF.
          const ref = Buffer.concat([b('\r\n'), data]).indexOf('\r\n.\r\n');
          assert.equal(whole.end, ref === -1 ? -1 : ref + 3);
          if (whole.end !== -1) assert.equal(whole.bytes, whole.end - 3);
          // Reference for bare: a CR not followed by LF or an LF not preceded by CR, before the end.
          const scanned = whole.end === -1 ? data : data.subarray(0, whole.end);
          let isBare = false;
          for (let i = 0; i < scanned.length; i++) {
            if (scanned[i] === 0x0d && i + 1 < scanned.length && scanned[i + 1] !== 0x0a) isBare = true;
            if (scanned[i] === 0x0a && (i === 0 || scanned[i - 1] !== 0x0d)) isBare = true;
          }
          assert.equal(whole.bare, isBare);
        },
      ),
      { numRuns: 3000 },
    );
  });
});
