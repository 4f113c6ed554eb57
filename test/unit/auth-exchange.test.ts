import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUTH_LINE_MAX, AuthExchange, authCommandRefusal, authKeyword, mailRefusal, type AuthStep, type ExchangePolicy } from '../../src/auth/exchange.js';

const TLS: ExchangePolicy = { mechanisms: ['PLAIN', 'LOGIN'], tls: true, plaintext: false };
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** The bytes the session would send for a step (or the credentials as JSON). */
function wire(step: AuthStep): string {
  if (step.kind === 'challenge') return step.reply;
  if (step.kind === 'error') return step.error.reply;
  return JSON.stringify(step.credentials);
}

/** Runs AUTH <args> and then each line; returns what each step puts on the wire. */
function run(args: string, lines: string[] = [], policy = TLS): string[] {
  const x = new AuthExchange(policy);
  const out = [wire(x.start(args))];
  for (const l of lines) out.push(wire(x.next(l)));
  return out;
}

const creds = (mechanism: string, user: string, password: string, authzid = ''): string => JSON.stringify({ mechanism, authzid, user, password });

describe('AuthExchange: PLAIN', () => {
  it('takes an initial response (RFC 4954 §4 example)', () => {
    assert.deepEqual(run('PLAIN dGVzdAB0ZXN0ADEyMzQ='), [creds('PLAIN', 'test', '1234', 'test')]);
  });

  it('sends an empty challenge without one, then reads the response', () => {
    assert.deepEqual(run('PLAIN', [b64('\0alice\0s3cret')]), ['334 \r\n', creds('PLAIN', 'alice', 's3cret')]);
  });

  it('takes the mechanism name in any case and tolerates trailing spaces', () => {
    assert.deepEqual(run('plain ' + b64('\0a\0b') + ' '), [creds('PLAIN', 'a', 'b')]);
  });

  it('answers 501 5.5.2 to bad base64, in the initial response and on a later line', () => {
    assert.deepEqual(run('PLAIN AHRpbQB0YW5z!'), ['501 5.5.2 Invalid base64 data\r\n']);
    assert.deepEqual(run('PLAIN', ['AHRpbQ']), ['334 \r\n', '501 5.5.2 Invalid base64 data\r\n']);
  });

  it('reads "=" as an empty initial response, which is no PLAIN message', () => {
    assert.deepEqual(run('PLAIN ='), ['501 5.5.2 Malformed authentication data\r\n']);
  });

  it('answers 501 5.5.2 to a decoded message that is not PLAIN', () => {
    assert.deepEqual(run('PLAIN ' + b64('alice:s3cret')), ['501 5.5.2 Malformed authentication data\r\n']);
  });

  it('is cancelled by "*" with 501 5.7.0', () => {
    assert.deepEqual(run('PLAIN', ['*']), ['334 \r\n', '501 5.7.0 Authentication cancelled\r\n']);
  });
});

describe('AuthExchange: LOGIN', () => {
  it('asks for the user name, then the password', () => {
    assert.deepEqual(run('LOGIN', [b64('alice'), b64('s3cret')]), [
      '334 VXNlcm5hbWU6\r\n',
      '334 UGFzc3dvcmQ6\r\n',
      creds('LOGIN', 'alice', 's3cret'),
    ]);
  });

  it('takes the user name as an initial response', () => {
    assert.deepEqual(run('LOGIN ' + b64('alice'), [b64('s3cret')]), ['334 UGFzc3dvcmQ6\r\n', creds('LOGIN', 'alice', 's3cret')]);
  });

  it('is cancelled by "*" at either prompt', () => {
    assert.deepEqual(run('LOGIN', ['*']), ['334 VXNlcm5hbWU6\r\n', '501 5.7.0 Authentication cancelled\r\n']);
    assert.deepEqual(run('LOGIN', [b64('alice'), '*']).at(-1), '501 5.7.0 Authentication cancelled\r\n');
  });

  it('refuses an empty user name or password, and bad base64 at the password', () => {
    assert.deepEqual(run('LOGIN =').at(-1), '501 5.5.2 Malformed authentication data\r\n');
    assert.deepEqual(run('LOGIN', [b64('alice'), '']).at(-1), '501 5.5.2 Malformed authentication data\r\n');
    assert.deepEqual(run('LOGIN', [b64('alice'), 'cGFzcw']).at(-1), '501 5.5.2 Invalid base64 data\r\n');
  });
});

describe('AuthExchange: refusals', () => {
  it('answers 504 5.5.4 to a mechanism it does not offer', () => {
    assert.deepEqual(run('CRAM-MD5'), ['504 5.5.4 Unrecognized authentication type\r\n']);
    assert.deepEqual(run('LOGIN', [], { ...TLS, mechanisms: ['PLAIN'] }), ['504 5.5.4 Unrecognized authentication type\r\n']);
  });

  it('answers 538 5.7.11 without TLS unless plaintext is allowed', () => {
    const plain: ExchangePolicy = { mechanisms: ['PLAIN', 'LOGIN'], tls: false, plaintext: false };
    assert.deepEqual(run('PLAIN ' + b64('\0a\0b'), [], plain), ['538 5.7.11 Encryption required for requested authentication mechanism\r\n']);
    assert.deepEqual(run('PLAIN ' + b64('\0a\0b'), [], { ...plain, plaintext: true }), [creds('PLAIN', 'a', 'b')]);
  });

  it('answers 501 5.5.4 to AUTH without a mechanism or with extra arguments', () => {
    assert.deepEqual(run(''), ['501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n']);
    assert.deepEqual(run('PLAIN abcd efgh'), ['501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n']);
  });

  it('answers 500 5.5.6 to a line over the authentication buffer, or one the session dropped', () => {
    const long = 'A'.repeat(AUTH_LINE_MAX + 4);
    assert.deepEqual(run('PLAIN', [long]), ['334 \r\n', '500 5.5.6 Authentication Exchange line is too long\r\n']);
    // Exactly at the limit is still read (and here is merely not a PLAIN message).
    assert.deepEqual(run('PLAIN', ['A'.repeat(AUTH_LINE_MAX)]).at(-1), '501 5.5.2 Malformed authentication data\r\n');
    const x = new AuthExchange(TLS);
    x.start('LOGIN');
    assert.equal(wire(x.tooLong()), '500 5.5.6 Authentication Exchange line is too long\r\n');
  });

  it('is over after credentials or an error, and says so', () => {
    const x = new AuthExchange(TLS);
    assert.equal(x.waiting, false);
    x.start('LOGIN');
    assert.equal(x.waiting, true);
    x.next(b64('alice'));
    x.next(b64('pw'));
    assert.equal(x.waiting, false);
    assert.throws(() => x.next(b64('more')));
  });

  it('reports why it failed, for the log', () => {
    const x = new AuthExchange(TLS);
    const step = x.start('PLAIN ###');
    assert.equal(step.kind, 'error');
    assert.equal(step.kind === 'error' ? step.failure : null, 'bad_base64');
  });
});

describe('AUTH in the session', () => {
  it('is advertised only where it may be used', () => {
    assert.equal(authKeyword('optional', TLS), 'AUTH PLAIN LOGIN');
    assert.equal(authKeyword('required', { ...TLS, mechanisms: ['LOGIN'] }), 'AUTH LOGIN');
    assert.equal(authKeyword('off', TLS), null);
    assert.equal(authKeyword('optional', { ...TLS, tls: false }), null);
    assert.equal(authKeyword('optional', { ...TLS, tls: false, plaintext: true }), 'AUTH PLAIN LOGIN');
  });

  it('refuses AUTH when off, before EHLO, twice, or in a transaction', () => {
    const ok = { mode: 'optional', ehlo: true, authenticated: false, inTransaction: false } as const;
    assert.equal(authCommandRefusal(ok), null);
    assert.equal(authCommandRefusal({ ...ok, mode: 'off' })?.reply, '502 5.5.1 AUTH not available\r\n');
    assert.equal(authCommandRefusal({ ...ok, ehlo: false })?.reply, '503 5.5.1 Send EHLO first\r\n');
    assert.equal(authCommandRefusal({ ...ok, authenticated: true })?.reply, '503 5.5.1 Already authenticated\r\n');
    assert.equal(authCommandRefusal({ ...ok, inTransaction: true })?.reply, '503 5.5.1 AUTH not permitted during a mail transaction\r\n');
  });

  it('answers MAIL before AUTH with 530 5.7.0 only on required listeners', () => {
    assert.equal(mailRefusal('required', false)?.reply, '530 5.7.0 Authentication required\r\n');
    assert.equal(mailRefusal('required', true), null);
    assert.equal(mailRefusal('optional', false), null);
  });
});
