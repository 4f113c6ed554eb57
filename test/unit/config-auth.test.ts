import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkConfigFile, ConfigError, loadConfig, parseConfig, parsePasswordFile, type ConfigProblem } from '../../src/config/index.js';

const BASE = `
listeners:
  - { name: submission, listen: '0.0.0.0:587', tls: starttls, auth: required }
  - { name: smtp, listen: '0.0.0.0:25' }
tls: { certificates: [{ cert: a.pem, key: a.key }] }
backends:
  servers: [{ address: '10.0.0.11:25' }]
`;

function problems(text: string): ConfigProblem[] {
  try {
    parseConfig(text, 'test.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems;
  }
  assert.fail('expected the config to be rejected');
}

const BCRYPT = '$2b$04$dLbdFs5iXrB/iC515VGiAOLRe7CTtBC00YVmRHbEL7Rhh9nu0QPdm';
const ARGON2 = '$argon2id$v=19$m=65536,t=3,p=1$2GRZD5sWaNwrs9uY4lXlrw$i4D+/oZKC/67qm0yuUsuDRUP07bTwX9KC290hjrFvkM';

describe('auth config', () => {
  it('fills defaults around the verifier', () => {
    const c = parseConfig(`${BASE}auth: { verifier: { type: dovecot, address: /run/dovecot/auth-client } }\n`);
    assert.deepEqual(c.listeners.map((l) => l.auth), ['required', 'off']);
    assert.deepEqual(c.auth, {
      mechanisms: ['PLAIN', 'LOGIN'],
      plaintext: false,
      verifier: { type: 'dovecot', address: { type: 'unix', path: '/run/dovecot/auth-client', text: '/run/dovecot/auth-client' }, timeout: 30_000 },
      failures: { per_ip: { count: 20, window: 600_000 }, per_user: { count: 10, window: 600_000 }, known_address: 14 * 24 * 3600_000 },
      to_backend: 'xclient-login',
    });
  });

  it('reads each verifier type and the other keys', () => {
    const tcp = parseConfig(`${BASE}auth:
  mechanisms: [login]
  plaintext: true
  verifier: { type: dovecot, address: '127.0.0.1:12345', timeout: 5s }
  failures: { per_ip: null, per_user: 3/1m, known_address: 0 }
  to_backend: none
`).auth;
    assert.deepEqual(tcp?.mechanisms, ['LOGIN']);
    assert.equal(tcp?.plaintext, true);
    assert.deepEqual(tcp?.verifier, { type: 'dovecot', address: { type: 'tcp', host: '127.0.0.1', port: 12345, text: '127.0.0.1:12345' }, timeout: 5000 });
    assert.deepEqual(tcp?.failures, { per_ip: null, per_user: { count: 3, window: 60_000 }, known_address: 0 });
    assert.equal(tcp?.to_backend, 'none');

    const http = parseConfig(`${BASE}auth: { verifier: { type: http, url: 'http://127.0.0.1:9000/auth', headers: { X-Auth-Key: s3cret } } }\n`).auth;
    assert.deepEqual(http?.verifier, { type: 'http', url: 'http://127.0.0.1:9000/auth', timeout: 10_000, headers: { 'X-Auth-Key': 's3cret' } });

    const file = parseConfig(`${BASE}auth: { verifier: { type: file, path: /etc/postern/passwd } }\n`).auth;
    assert.deepEqual(file?.verifier, { type: 'file', path: '/etc/postern/passwd' });
  });

  it('needs the auth section where a listener offers AUTH, and TLS or plaintext: true', () => {
    let ps = problems(BASE);
    assert.deepEqual(ps.map((p) => p.path), ['listeners[0].auth']);
    assert.match(ps[0]?.message ?? '', /auth: required needs the auth section/);

    ps = problems(`
listeners: [{ name: smtp, listen: '0.0.0.0:25', auth: optional }]
backends: { servers: [{ address: '10.0.0.11:25' }] }
auth: { verifier: { type: file, path: p } }
`);
    assert.deepEqual(ps.map((p) => p.path), ['listeners[0].auth']);
    assert.match(ps[0]?.message ?? '', /never offered before TLS.*auth.plaintext: true/);
    // The same listener is fine with plaintext: true.
    parseConfig(`
listeners: [{ name: smtp, listen: '0.0.0.0:25', auth: optional }]
backends: { servers: [{ address: '10.0.0.11:25' }] }
auth: { plaintext: true, verifier: { type: file, path: p } }
`);
  });

  it('reports each mistake in the section at its path', () => {
    const ps = problems(`${BASE}auth:
  mechanisms: [PLAIN, CRAM-MD5]
  plaintext: maybe
  verifier: { type: http, url: 'ftp://x/auth', headers: { Auth-User: x }, tmeout: 3s }
  failures: { per_ip: lots }
  to_backend: proxy
`);
    assert.deepEqual(ps.map((p) => p.path).sort(), [
      'auth.failures.per_ip',
      'auth.mechanisms',
      'auth.plaintext',
      'auth.to_backend',
      'auth.verifier.headers',
      'auth.verifier.tmeout',
      'auth.verifier.url',
    ]);
    const by = new Map(ps.map((p) => [p.path, p.message]));
    assert.match(by.get('auth.mechanisms') ?? '', /unknown entry "CRAM-MD5": expected a list of PLAIN, LOGIN/);
    assert.match(by.get('auth.verifier.headers') ?? '', /header "Auth-User" is set by Postern itself/);
    assert.match(by.get('auth.verifier.tmeout') ?? '', /did you mean "timeout"/);
    assert.match(by.get('auth.verifier.url') ?? '', /http:\/\/ or https:\/\/ URL/);
  });

  it('names the verifier types when the type is wrong or missing', () => {
    let ps = problems(`${BASE}auth: { verifier: { type: ldap } }\n`);
    assert.deepEqual(ps.map((p) => [p.path, p.message]), [['auth.verifier.type', 'expected one of dovecot, http, file, got "ldap"']]);
    ps = problems(`${BASE}auth: { verifier: { path: /x } }\n`);
    assert.deepEqual(ps.map((p) => [p.path, p.message]), [['auth.verifier.type', 'required key is missing: expected one of dovecot, http, file']]);
    ps = problems(`${BASE}auth:\n`);
    assert.deepEqual(ps.map((p) => [p.path, p.message]), [['auth.verifier', 'required key is missing']]);
    ps = problems(`${BASE}auth: { verifier: { type: dovecot, address: 'dovecot' } }\n`);
    assert.deepEqual(ps.map((p) => p.path), ['auth.verifier.address']);
    assert.match(ps[0]?.message ?? '', /unix socket path .* or HOST:PORT/);
  });
});

describe('password file', () => {
  it('parses bcrypt and argon2 lines, Dovecot passwd-file lines too', () => {
    const parsed = parsePasswordFile(
      `# users\nalice:${BCRYPT}\n\nbob@example.org:{ARGON2ID}${ARGON2}::::::\r\ncarol:{BLF-CRYPT}${BCRYPT.replace('$2b$', '$2y$')}:1000:1000::/home/carol::\n`,
    );
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual([...parsed.entries.values()].map((e) => [e.user, e.kind, e.line]), [
      ['alice', 'bcrypt', 2],
      ['bob@example.org', 'argon2', 4],
      ['carol', 'bcrypt', 5],
    ]);
    assert.equal(parsed.entries.get('bob@example.org')?.hash, ARGON2);
  });

  it('reports bad lines and duplicates by line number, never showing a hash', () => {
    const parsed = parsePasswordFile(`alice:${BCRYPT}\nno-colon\n:${BCRYPT}\nbob:{PLAIN}secret\nalice:${ARGON2}\n`);
    assert.deepEqual(parsed.problems.map((p) => p.line), [2, 3, 4, 5]);
    assert.match(parsed.problems[2]?.message ?? '', /neither bcrypt .* nor argon2/);
    assert.match(parsed.problems[3]?.message ?? '', /"alice" is also on line 1/);
    for (const p of parsed.problems) assert.ok(!p.message.includes('secret') && !p.message.includes(BCRYPT.slice(7)) && !p.message.includes('2GRZD5'));
  });
});

describe('postern check: the password file', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'postern-config-auth-'));
    writeFileSync(join(dir, 'passwd'), `alice:${BCRYPT}\n`);
    writeFileSync(join(dir, 'bad-passwd'), `alice:${BCRYPT}\nbob:plain\n`);
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const config = (name: string, path: string): string => {
    const file = join(dir, name);
    writeFileSync(file, `listeners: [{ name: smtp, listen: '127.0.0.1:0', auth: optional }]
backends: { servers: [{ address: '127.0.0.1:2526' }] }
auth:
  plaintext: true
  verifier: { type: file, path: ${path} }
`);
    return file;
  };

  it('accepts a good file and resolves it against the config directory', () => {
    const file = config('good.yaml', 'passwd');
    assert.deepEqual(checkConfigFile(file), []);
    const v = loadConfig(file).auth?.verifier;
    assert.deepEqual(v, { type: 'file', path: join(dir, 'passwd') });
  });

  it('reports a missing file at auth.verifier.path', () => {
    const ps = checkConfigFile(config('missing.yaml', 'nope'));
    assert.deepEqual(ps.map((p) => [p.path, p.message, p.line]), [['auth.verifier.path', `cannot read ${join(dir, 'nope')}: no such file`, 5]]);
  });

  it('reports a bad line with its number', () => {
    const ps = checkConfigFile(config('bad.yaml', 'bad-passwd'));
    assert.deepEqual(ps.map((p) => p.path), ['auth.verifier.path']);
    assert.match(ps[0]?.message ?? '', /bad-passwd line 2: the hash for "bob" is neither/);
  });
});
