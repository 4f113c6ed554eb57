import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DataScanner } from '../../src/smtp/data.js';
import { BareLineNormalizer } from '../../src/smtp/normalize.js';
import { splitAt } from '../helpers/chunks.js';

function normalizeAll(chunks: Buffer[]): Buffer {
  const n = new BareLineNormalizer();
  return Buffer.concat(chunks.map((c) => n.transform(c)));
}

describe('BareLineNormalizer', () => {
  it('leaves a clean CRLF body byte for byte as it was', () => {
    const b = Buffer.from('a\r\n..b\r\nc\r\n.\r\n');
    assert.deepEqual(new BareLineNormalizer().transform(b), b);
  });
  it('a line that is exactly "." ended by a bare CR or LF is not a terminator', () => {
    assert.equal(normalizeAll([Buffer.from('.\ra')]).toString(), '..\r\na');
    assert.equal(normalizeAll([Buffer.from('x\r\n.\n')]).toString(), 'x\r\n..\r\n');
    assert.equal(normalizeAll([Buffer.from('x\r\n.'), Buffer.from('\r'), Buffer.from('y')]).toString(), 'x\r\n..\r\ny');
  });
  it('turns bare LF and bare CR into CRLF', () => {
    assert.equal(normalizeAll([Buffer.from('a\nb\rc\r\n')]).toString(), 'a\r\nb\r\nc\r\n');
  });
  it('doubles a dot at a line start it created, so <LF>.<LF> cannot end DATA', () => {
    assert.equal(normalizeAll([Buffer.from('x\n.\nMAIL FROM:<e>\r\n')]).toString(), 'x\r\n..\r\nMAIL FROM:<e>\r\n');
    assert.equal(normalizeAll([Buffer.from('x\r.\r\n')]).toString(), 'x\r\n..\r\n');
  });
  it('handles a CR at a chunk end and a dot at the next chunk start', () => {
    assert.equal(normalizeAll([Buffer.from('a\r'), Buffer.from('\nb')]).toString(), 'a\r\nb');
    assert.equal(normalizeAll([Buffer.from('a\r'), Buffer.from('.b')]).toString(), 'a\r\n..b');
    assert.equal(normalizeAll([Buffer.from('a\n'), Buffer.from('.b')]).toString(), 'a\r\n..b');
  });
  it('property: only CRLF line ends remain and no terminator is ever created', () => {
    const piece = fc.constantFrom('a', '.', '\r', '\n', '\r\n', '..', 'x.y', ' ');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 5 }), (pieces, cuts) => {
        // A client body, dot-stuffed where its lines really start (after CRLF).
        const raw = Buffer.from(pieces.join(''), 'latin1');
        const points = [...new Set(cuts.map((c) => (raw.length ? c % raw.length : 0)))].sort((a, b) => a - b);
        const out = normalizeAll(splitAt(raw, points));
        // Only CRLF line ends remain.
        assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(out.toString('latin1')));
        // The output scanned strictly finds a terminator only where the raw body, scanned
        // strictly, had one already (normalization never adds one).
        const rawEnd = new DataScanner().scan(raw).end;
        if (rawEnd === -1) {
          assert.equal(new DataScanner().scan(out).end, -1);
        } else {
          // The body up to the client's real terminator ends exactly there, not before.
          const upTo = normalizeAll([raw.subarray(0, rawEnd)]);
          assert.equal(new DataScanner().scan(upTo).end, upTo.length);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
