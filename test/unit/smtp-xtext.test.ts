import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { XtextError, xtextDecode, xtextEncode } from '../../src/smtp/xtext.js';

describe('xtextEncode', () => {
  it('escapes `+`, `=` and space: encode("a+b=c d") === "a+2Bb+3Dc+20d"', () => {
    assert.equal(xtextEncode('a+b=c d'), 'a+2Bb+3Dc+20d');
  });

  it('escapes CR, LF, tab, NUL and DEL', () => {
    assert.equal(xtextEncode('\r\n'), '+0D+0A');
    assert.equal(xtextEncode('a\tb\x00c\x7f'), 'a+09b+00c+7F');
  });

  it('escapes each byte of non-ASCII UTF-8', () => {
    assert.equal(xtextEncode('é'), '+C3+A9');
    assert.equal(xtextEncode('jöran'), 'j+C3+B6ran');
    assert.equal(xtextEncode('€'), '+E2+82+AC');
    assert.equal(xtextEncode('😀'), '+F0+9F+98+80');
  });

  it('encodes raw bytes, with upper-case hex', () => {
    assert.equal(xtextEncode(new Uint8Array([0x00, 0x0f, 0x20, 0x7f, 0x80, 0xab, 0xff])), '+00+0F+20+7F+80+AB+FF');
    assert.equal(xtextEncode(Buffer.from('hello')), 'hello');
    assert.equal(xtextEncode(new Uint8Array(0)), '');
  });

  it('keeps every printable ASCII character except `+` and `=`', () => {
    let all = '';
    for (let c = 0x21; c <= 0x7e; c++) all += String.fromCharCode(c);
    const want = all.replace('+', '+2B').replace('=', '+3D');
    assert.equal(xtextEncode(all), want);
    assert.equal(xtextEncode('!'), '!');
    assert.equal(xtextEncode('~'), '~');
    assert.equal(xtextEncode('[192.0.2.1]'), '[192.0.2.1]');
  });

  it('encodes the empty string as empty', () => {
    assert.equal(xtextEncode(''), '');
  });

  it('property: a string encodes as its UTF-8 bytes do (the no-escape shortcut included)', () => {
    const safe = fc.stringMatching(/^[!-*,-<>-~]*$/);
    fc.assert(
      fc.property(fc.oneof(safe, fc.string({ unit: 'binary' }), fc.string()), (s) => {
        assert.equal(xtextEncode(s), xtextEncode(Buffer.from(s, 'utf8')));
      }),
      { numRuns: 2000 },
    );
    assert.equal(xtextEncode('[192.0.2.1]'), '[192.0.2.1]');
    assert.equal(xtextEncode('mail.example.com'), 'mail.example.com');
  });

  it('property: output only ever holds xtext characters (no space, `=`, CR, LF)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const t = xtextEncode(bytes);
        assert.match(t, /^(?:[!-*,-<>-~]|\+[0-9A-F]{2})*$/);
      }),
    );
  });
});

describe('xtextDecode', () => {
  it('decodes escapes', () => {
    assert.equal(xtextDecode('a+2Bb+3Dc+20d').toString('latin1'), 'a+b=c d');
    assert.equal(xtextDecode('+0D+0A').toString('latin1'), '\r\n');
    assert.equal(xtextDecode('j+C3+B6ran').toString('utf8'), 'jöran');
    assert.equal(xtextDecode('').length, 0);
  });

  it('accepts lower-case hex digits', () => {
    assert.equal(xtextDecode('+2b+3d+c3+b6').toString('utf8'), '+=ö');
  });

  it('accepts an escape of a character that did not need one', () => {
    assert.equal(xtextDecode('+41+42C').toString('latin1'), 'ABC');
  });

  it('rejects bad escapes', () => {
    for (const t of ['+', 'a+', '+2', 'a+2', '+G0', '+2G', '+ 2', '+-1', '++2B', '+2 B', '+０0']) {
      assert.throws(() => xtextDecode(t), XtextError, JSON.stringify(t));
    }
  });

  it('rejects characters xtext does not allow', () => {
    for (const t of ['a b', '=', 'a=b', '\r', '\n', 'a\r\nb', '\t', '\x00', '\x7f', 'é', '😀']) {
      assert.throws(() => xtextDecode(t), XtextError, JSON.stringify(t));
    }
  });

  it('XtextError has a code and is an Error', () => {
    try {
      xtextDecode('+zz');
      assert.fail('no throw');
    } catch (e) {
      assert.ok(e instanceof XtextError);
      assert.ok(e instanceof Error);
      assert.equal(e.code, 'XTEXT_SYNTAX');
      assert.match(e.message, /at 0/);
    }
  });

  it('property: decode(encode(bytes)) is the identity on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 128 }), (bytes) => {
        assert.ok(xtextDecode(xtextEncode(bytes)).equals(Buffer.from(bytes)));
      }),
      { numRuns: 1000 },
    );
  });

  it('property: decode(encode(string)) gives back the UTF-8 of any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        assert.equal(xtextDecode(xtextEncode(s)).toString('utf8'), s);
      }),
      { numRuns: 500 },
    );
  });

  it('property: decoding arbitrary text returns bytes or throws XtextError, nothing else', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('+', '=', ' ', 'a', 'F', '0', 'g', '\r', 'é'), maxLength: 12 }), (t) => {
        try {
          const out = xtextDecode(t);
          // What decodes re-encodes to a canonical form that decodes the same.
          assert.ok(xtextDecode(xtextEncode(out)).equals(out));
        } catch (e) {
          assert.ok(e instanceof XtextError, String(e));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
