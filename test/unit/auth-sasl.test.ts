import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeBase64Strict, encodeBase64 } from '../../src/auth/base64.js';
import { LOGIN_PASSWORD_CHALLENGE, LOGIN_USER_CHALLENGE, decodeLoginField } from '../../src/auth/sasl-login.js';
import { SaslSyntaxError, actsAsItself, decodePlain, encodePlain } from '../../src/auth/sasl-plain.js';

describe('strict base64', () => {
  it('decodes padded base64 and the empty string', () => {
    assert.deepEqual(decodeBase64Strict('AHRpbQB0YW5zdGFhZnRhbmtl'), Buffer.from('\0tim\0tanstaaftanke'));
    assert.deepEqual(decodeBase64Strict('YQ=='), Buffer.from('a'));
    assert.deepEqual(decodeBase64Strict('YWI='), Buffer.from('ab'));
    assert.deepEqual(decodeBase64Strict(''), Buffer.alloc(0));
  });

  it('refuses what Buffer.from(s, "base64") would quietly accept', () => {
    for (const bad of ['YQ', 'YQ=', '=AAA', 'AAA=BBBB', 'YW Jj', 'YWJj\r', 'YWJj!', 'Y===', '*', '=', '-_-_']) {
      assert.equal(decodeBase64Strict(bad), null, bad);
    }
  });

  it('round-trips any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const b = Buffer.from(bytes);
        assert.deepEqual(decodeBase64Strict(encodeBase64(b)), b);
      }),
    );
  });
});

describe('PLAIN (RFC 4616)', () => {
  it('decodes the RFC 4616 §4 examples', () => {
    assert.deepEqual(decodePlain(Buffer.from('\0tim\0tanstaaftanstaaf')), { authzid: '', user: 'tim', password: 'tanstaaftanstaaf' });
    assert.deepEqual(decodePlain(Buffer.from('Ursel\0Kurt\0xipj3plmq')), { authzid: 'Ursel', user: 'Kurt', password: 'xipj3plmq' });
  });

  it('keeps UTF-8 and refuses bytes that are not UTF-8', () => {
    assert.deepEqual(decodePlain(Buffer.from('\0jürgen@例え.jp\0pässwörd', 'utf8')), { authzid: '', user: 'jürgen@例え.jp', password: 'pässwörd' });
    assert.throws(() => decodePlain(Buffer.from([0, 0x61, 0, 0xff, 0xfe])), SaslSyntaxError);
  });

  it('refuses a message without two separators, with three, or with an empty user or password', () => {
    for (const bad of ['', 'timtanstaaf', '\0tim', '\0tim\0pass\0', '\0\0pass', '\0tim\0', 'a\0b\0c\0d']) {
      assert.throws(() => decodePlain(Buffer.from(bad)), SaslSyntaxError, JSON.stringify(bad));
    }
  });

  it('encodes what it decodes', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 20 }).filter((s) => !s.includes('\0')),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\0')),
        fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\0')),
        (authzid, user, password) => {
          assert.deepEqual(decodePlain(encodePlain({ authzid, user, password })), { authzid, user, password });
        },
      ),
    );
  });
});

describe('LOGIN (draft-murchison-sasl-login)', () => {
  it('prompts with the base64 of "Username:" and "Password:"', () => {
    assert.equal(LOGIN_USER_CHALLENGE, 'VXNlcm5hbWU6');
    assert.equal(LOGIN_PASSWORD_CHALLENGE, 'UGFzc3dvcmQ6');
  });

  it('decodes a field and refuses empty, NUL or non-UTF-8 ones', () => {
    assert.equal(decodeLoginField(Buffer.from('ßüser'), 'user name'), 'ßüser');
    assert.throws(() => decodeLoginField(Buffer.alloc(0), 'user name'), SaslSyntaxError);
    assert.throws(() => decodeLoginField(Buffer.from('a\0b'), 'password'), SaslSyntaxError);
    assert.throws(() => decodeLoginField(Buffer.from([0xc3]), 'password'), SaslSyntaxError);
  });
});

describe('PLAIN authzid (RFC 4616 §2)', () => {
  it('is accepted only absent or naming the authcid itself, exactly', () => {
    assert.equal(actsAsItself({ authzid: '', user: 'alice' }), true);
    assert.equal(actsAsItself({ authzid: 'alice', user: 'alice' }), true);
    assert.equal(actsAsItself({ authzid: 'bob', user: 'alice' }), false);
    assert.equal(actsAsItself({ authzid: 'Alice', user: 'alice' }), false);
    assert.equal(actsAsItself({ authzid: 'alice ', user: 'alice' }), false);
  });
});
