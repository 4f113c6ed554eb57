// session/body.ts: a message body on its way to the backend. DATA goes through the
// terminator scanner at every possible chunk split; BDAT by its octet counts (RFC 3030 §2);
// a body that must not be relayed is "poisoned", read to its end, then refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AnomalyKind } from '../../src/observe/records.js';
import { Body, type BodyHost } from '../../src/session/body.js';
import type { SmtpError } from '../../src/smtp/errors.js';
import { splitAt } from '../helpers/chunks.js';

const b = (s: string) => Buffer.from(s, 'latin1');

interface Host extends BodyHost {
  relayed: Buffer[];
  anomalies: { kind: AnomalyKind; detail: string }[];
  poisons: SmtpError[];
  out(): string;
}

function host(): Host {
  const h: Host = {
    relayed: [],
    anomalies: [],
    poisons: [],
    relay: (d) => void h.relayed.push(Buffer.from(d)),
    anomaly: (kind, detail) => void h.anomalies.push({ kind, detail }),
    poisoned: (err) => void h.poisons.push(err),
    out: () => Buffer.concat(h.relayed).toString('latin1'),
  };
  return h;
}

/**
 * Feeds chunks as the session does: DATA bytes until the body ends, then whatever follows
 * the terminator (in that chunk and after it) is command input.
 */
function feedData(body: Body, chunks: Buffer[], sizeLimit = Infinity): { rest: string; ended: boolean } {
  for (let k = 0; k < chunks.length; k++) {
    const c = chunks[k]!;
    const end = body.data(c, sizeLimit);
    if (end !== -1) {
      assert.ok(end >= 0 && end <= c.length);
      return { rest: Buffer.concat([c.subarray(end), ...chunks.slice(k + 1)]).toString('latin1'), ended: true };
    }
  }
  return { rest: '', ended: false };
}

/** Every split of `wire` into two and three chunks (empty chunks included). */
function* everySplit(wire: Buffer): Generator<number[]> {
  for (let i = 0; i <= wire.length; i++) {
    yield [i];
    for (let j = i; j <= wire.length; j++) yield [i, j];
  }
}

const MESSAGE = 'Subject: t\r\n\r\n..stuffed\r\nline\r\n';
const TERMINATOR = '.\r\n';
const AFTER = 'QUIT\r\n';

describe('Body: DATA', () => {
  it('at every split into 2 and 3 chunks: the body and terminator are relayed whole, what follows is commands', () => {
    const wire = b(MESSAGE + TERMINATOR + AFTER);
    let cases = 0;
    for (const points of everySplit(wire)) {
      const h = host();
      const body = new Body(h);
      body.startData(false);
      const r = feedData(body, splitAt(wire, points));
      const where = `split at ${points.join(',')}`;
      assert.ok(r.ended, where);
      assert.equal(h.out(), MESSAGE + TERMINATOR, where);
      assert.equal(r.rest, AFTER, where);
      assert.equal(body.dataBytes, MESSAGE.length, `${where}: body bytes exclude the terminator`);
      assert.equal(body.poisoned, null, where);
      assert.equal(body.takePoison(), null, where);
      assert.deepEqual(h.anomalies, [], where);
      cases++;
    }
    assert.ok(cases > 900, `${cases} splits`);
  });

  it('a body that is only the terminator (empty message) ends at once', () => {
    const h = host();
    const body = new Body(h);
    body.startData(false);
    assert.equal(body.data(b('.\r\nNOOP\r\n'), 100), 3);
    assert.equal(h.out(), '.\r\n');
    assert.equal(body.dataBytes, 0);
  });

  it('startData starts over: a second body is scanned from a clean state', () => {
    const h = host();
    const body = new Body(h);
    body.startData(false);
    // The first body ends on `.` + CR ... that never completes (the client vanished).
    assert.equal(body.data(b('x\r\n.\r'), Infinity), -1);
    body.startData(false);
    assert.equal(body.data(b('\n'), Infinity), -1, 'the old state must not complete a terminator');
    assert.equal(body.data(b('\r\n.\r\n'), Infinity), 5);
  });

  for (const [name, message] of [
    ['a bare LF', 'a\nb\r\n'],
    ['a bare CR', 'a\rb\r\n'],
    ['<LF>.<LF> (the smuggling form)', 'a\r\n\n.\nMAIL FROM:<x@y>\r\n'],
  ] as const) {
    it(`bare_lf reject: ${name} poisons the body at every split; it is read to its end, and nothing after the bare byte is relayed`, () => {
      const wire = b(message + TERMINATOR + AFTER);
      for (const points of everySplit(wire)) {
        const where = `split at ${points.join(',')}`;
        const h = host();
        const body = new Body(h);
        body.startData(false);
        const r = feedData(body, splitAt(wire, points));
        assert.ok(r.ended, where);
        assert.equal(r.rest, AFTER, where);
        assert.equal(h.poisons.length, 1, `${where}: poisoned once`);
        assert.equal(h.poisons[0]!.smtpCode, 550);
        assert.equal(h.poisons[0]!.enhanced, '5.5.2');
        assert.ok(h.anomalies.some((a) => a.kind === 'bare_lf'), where);
        // What reached the backend is a prefix of the body that stops before the bare
        // byte's chunk: the backend never gets the rest, nor a terminator.
        const out = h.out();
        assert.ok(message.startsWith(out), `${where}: relayed ${JSON.stringify(out)}`);
        assert.ok(!/[^\r]\n|\r[^\n]/.test(out.slice(0, -1)), `${where}: no bare byte relayed`);
        const err = body.takePoison();
        assert.equal(err, h.poisons[0]);
        assert.equal(body.takePoison(), null, 'the verdict is taken once');
      }
    });
  }

  it('bare_lf normalize: the same relayed bytes at every split, CRLF only, an anomaly, no poison', () => {
    const message = 'a\nb\rc\r\n.\nd\r\n';
    const wire = b(message + TERMINATOR + AFTER);
    let whole: string | null = null;
    for (const points of everySplit(wire)) {
      const where = `split at ${points.join(',')}`;
      const h = host();
      const body = new Body(h);
      body.startData(true);
      const r = feedData(body, splitAt(wire, points));
      assert.ok(r.ended, where);
      assert.equal(r.rest, AFTER, where);
      assert.equal(h.poisons.length, 0, where);
      assert.ok(h.anomalies.every((a) => a.kind === 'bare_lf') && h.anomalies.length >= 1, where);
      const out = h.out();
      whole ??= out;
      assert.equal(out, whole, where);
      assert.equal(body.takePoison(), null);
    }
    // Every line end is CRLF, and the bare-LF-ended `.` line was doubled, not made a terminator.
    assert.equal(whole, 'a\r\nb\r\nc\r\n..\r\nd\r\n.\r\n');
  });

  it('normalize with a clean body relays it byte for byte and reports nothing', () => {
    const h = host();
    const body = new Body(h);
    body.startData(true);
    feedData(body, [b(MESSAGE + TERMINATOR)]);
    assert.equal(h.out(), MESSAGE + TERMINATOR);
    assert.deepEqual(h.anomalies, []);
  });

  it('size limit: a body over it is poisoned 552 5.3.4 and no byte past the limit is relayed', () => {
    const line = 'x'.repeat(98) + '\r\n'; // 100 bytes
    const wire = b(line.repeat(10) + TERMINATOR);
    const h = host();
    const body = new Body(h);
    body.startData(false);
    const chunks = splitAt(wire, [100, 200, 300, 400, 500, 600, 700, 800, 900]);
    const r = feedData(body, chunks, 450);
    assert.ok(r.ended);
    assert.equal(h.poisons.length, 1);
    assert.equal(h.poisons[0]!.smtpCode, 552);
    assert.equal(h.poisons[0]!.enhanced, '5.3.4');
    assert.equal(h.out().length, 400, 'the four chunks under the limit only');
    assert.equal(body.dataBytes, 1000, 'the body is still counted to its end');
    assert.equal(body.takePoison()?.smtpCode, 552);
  });

  it('size limit: a body of exactly the limit passes in one chunk', () => {
    const wire = b(MESSAGE + TERMINATOR);
    const h = host();
    const body = new Body(h);
    body.startData(false);
    feedData(body, [wire], MESSAGE.length);
    assert.equal(h.poisons.length, 0);
    assert.equal(h.out(), MESSAGE + TERMINATOR);
  });

  it(
    'size limit: a body of exactly the limit passes at every split (the verdict must not depend on TCP segmentation)',
    () => {
      const wire = b(MESSAGE + TERMINATOR);
      const refused: string[] = [];
      for (const points of everySplit(wire)) {
        const h = host();
        const body = new Body(h);
        body.startData(false);
        feedData(body, splitAt(wire, points), MESSAGE.length);
        if (h.poisons.length) refused.push(points.join(','));
      }
      assert.deepEqual(refused, []);
    },
  );

  it('poison() from outside (the session) stops relaying at once and tells the host', () => {
    const h = host();
    const body = new Body(h);
    body.startData(false);
    body.data(b('first\r\n'), Infinity);
    const err = { smtpCode: 554 } as SmtpError;
    body.poison(err);
    assert.equal(body.poisoned, err);
    assert.deepEqual(h.poisons, [err]);
    const end = body.data(b('second\r\n.\r\n'), Infinity);
    assert.equal(end, 11);
    assert.equal(h.out(), 'first\r\n');
    assert.equal(body.takePoison(), err);
  });

  it('reset and startData clear a poison left from the last body', () => {
    const body = new Body(host());
    body.poison({ smtpCode: 552 } as SmtpError);
    body.reset();
    assert.equal(body.poisoned, null);
    body.poison({ smtpCode: 552 } as SmtpError);
    body.startData(false);
    assert.equal(body.poisoned, null);
  });
});

describe('Body: BDAT', () => {
  it('a chunk arriving in pieces is relayed piece by piece and counted down to 0', () => {
    const h = host();
    const body = new Body(h);
    body.startBdat(10, false, false);
    assert.equal(body.bdatLeft, 10);
    assert.equal(body.bdat(b('abc'), true), null);
    assert.equal(body.bdatLeft, 7);
    assert.equal(body.bdat(b('defg'), true), null);
    assert.equal(body.bdat(b('hij'), true), null);
    assert.equal(body.bdatLeft, 0);
    assert.equal(h.out(), 'abcdefghij');
  });

  it('bytes past the chunk are handed back (commands), never relayed as body', () => {
    const h = host();
    const body = new Body(h);
    body.startBdat(5, true, false);
    assert.equal(body.bdat(b('abc'), true), null);
    const rest = body.bdat(b('de\r\nQUIT\r\n'), true);
    assert.equal(rest?.toString(), '\r\nQUIT\r\n');
    assert.equal(body.bdatLeft, 0);
    assert.equal(h.out(), 'abcde');
  });

  it('the chunk boundary at every offset of one read: exactly `size` octets relayed, the rest returned', () => {
    const wire = b('0123456789BDAT 3 LAST\r\n');
    for (let size = 0; size <= 10; size++) {
      const h = host();
      const body = new Body(h);
      body.startBdat(size, false, false);
      const rest = size === 0 ? wire : body.bdat(wire, true);
      assert.equal(h.out(), wire.subarray(0, size).toString('latin1'), `size ${size}`);
      assert.equal(rest?.toString('latin1'), wire.subarray(size).toString('latin1'), `size ${size}`);
    }
  });

  it('a skipped chunk is read past without relaying (startBdat skip, or skipBdat mid-chunk)', () => {
    const h = host();
    const body = new Body(h);
    body.startBdat(4, false, true);
    assert.equal(body.bdat(b('abcdNOOP\r\n'), true)?.toString(), 'NOOP\r\n');
    assert.equal(h.out(), '');
    body.startBdat(6, false, false);
    body.bdat(b('abc'), true);
    body.skipBdat();
    body.bdat(b('def'), true);
    assert.equal(h.out(), 'abc');
    assert.equal(body.bdatLeft, 0);
  });

  it('relay=false (no backend bound) counts the chunk down without relaying', () => {
    const h = host();
    const body = new Body(h);
    body.startBdat(3, true, false);
    body.bdat(b('abc'), false);
    assert.equal(body.bdatLeft, 0);
    assert.equal(h.out(), '');
  });

  it('a poison lasts over the chunks of the message and is cleared after LAST', () => {
    const h = host();
    const body = new Body(h);
    body.startBdat(3, false, false);
    body.bdat(b('abc'), true);
    body.poison({ smtpCode: 552 } as SmtpError);
    body.bdatDone();
    assert.notEqual(body.poisoned, null, 'a non-LAST chunk keeps it');
    body.startBdat(2, false, true);
    body.bdat(b('de'), true);
    body.bdatDone();
    assert.notEqual(body.poisoned, null);
    body.startBdat(1, true, true);
    body.bdat(b('f'), true);
    body.bdatDone();
    assert.equal(body.poisoned, null, 'after LAST the next message starts clean');
    assert.equal(h.out(), 'abc');
  });

  it('BDAT 0 LAST: a chunk with no octets ends the message', () => {
    const body = new Body(host());
    body.poison({ smtpCode: 552 } as SmtpError);
    body.startBdat(0, true, true);
    assert.equal(body.bdatLeft, 0);
    body.bdatDone();
    assert.equal(body.poisoned, null);
  });
});
