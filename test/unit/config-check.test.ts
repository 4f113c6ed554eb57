import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkConfigFile, ConfigError, loadConfig, type ConfigProblem } from '../../src/config/index.js';

let dir = '';

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

/** A config file in the temp dir with the given tls section (and optional extra YAML). */
function config(name: string, tls: string, extra = ''): string {
  const file = join(dir, name);
  writeFileSync(file, `hostname: mx.test
listeners:
  - { name: smtp, listen: '127.0.0.1:0', tls: starttls }
tls:
${tls}
backends:
  servers: [{ address: '127.0.0.1:2526' }]
${extra}`);
  return file;
}

const at = (ps: ConfigProblem[]): string[] => ps.map((p) => p.path);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'postern-config-check-'));
  const subj = ['-subj', '/CN=mx.test', '-days', '2'];
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'mx.key'), '-out', join(dir, 'mx.pem'), ...subj]);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'other.key'), '-out', join(dir, 'other.pem'), ...subj]);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-aes256', '-pass', 'pass:secret', '-out', join(dir, 'encrypted.key')]);
  writeFileSync(join(dir, 'garbage.pem'), 'this is not a certificate\n');
  writeFileSync(join(dir, 'ocsp.der'), Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x00]));
  mkdirSync(join(dir, 'tickets'));
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('checkConfigFile', () => {
  it('returns [] for a valid config with real files', () => {
    const file = join(dir, 'valid.yaml');
    writeFileSync(file, `hostname: mx.test
listeners:
  - { name: smtp, listen: '127.0.0.1:0', tls: starttls }
tls:
  certificates:
    - { cert: ${join(dir, 'mx.pem')}, key: ${join(dir, 'mx.key')}, ocsp: ${join(dir, 'ocsp.der')} }
  ticket_keys: { file: ${join(dir, 'tickets', 'keys')} }
backends:
  servers: [{ address: '127.0.0.1:2526' }]
  tls: { starttls: required, ca: ${join(dir, 'other.pem')} }
`);
    assert.deepEqual(checkConfigFile(file), []);
  });

  it('resolves relative paths against the config file directory', () => {
    const file = config('relative.yaml', '  certificates: [{ cert: mx.pem, key: mx.key }]\n  ticket_keys: { file: tickets/keys }');
    assert.deepEqual(checkConfigFile(file), []);
    const c = loadConfig(file);
    assert.deepEqual(c.tls?.certificates, [{ cert: join(dir, 'mx.pem'), key: join(dir, 'mx.key') }]);
    assert.equal(c.tls?.ticket_keys.file, join(dir, 'tickets', 'keys'));
  });

  it('reports a missing key file', () => {
    const file = config('nokey.yaml', `  certificates: [{ cert: ${join(dir, 'mx.pem')}, key: ${join(dir, 'missing.key')} }]`);
    const ps = checkConfigFile(file);
    assert.deepEqual(at(ps), ['tls.certificates[0].key']);
    assert.equal(ps[0]?.message, `cannot read ${join(dir, 'missing.key')}: no such file`);
    assert.equal(ps[0]?.line, 5);
  });

  it('reports a garbage certificate', () => {
    const file = config('garbage.yaml', `  certificates: [{ cert: ${join(dir, 'garbage.pem')}, key: ${join(dir, 'mx.key')} }]`);
    const ps = checkConfigFile(file);
    assert.deepEqual(at(ps), ['tls.certificates[0].cert']);
    assert.match(ps[0]?.message ?? '', /garbage\.pem is not a PEM certificate: /);
  });

  it('reports a key that does not match its certificate', () => {
    const file = config('mismatch.yaml', `  certificates: [{ cert: ${join(dir, 'mx.pem')}, key: ${join(dir, 'other.key')} }]`);
    const ps = checkConfigFile(file);
    assert.deepEqual(at(ps), ['tls.certificates[0].key']);
    assert.match(ps[0]?.message ?? '', /other\.key does not match the certificate in .*mx\.pem/);
  });

  it('reports an encrypted key, a key given as the certificate, and an unreadable OCSP file', () => {
    const file = config('misc.yaml', `  certificates:
    - { cert: ${join(dir, 'mx.pem')}, key: ${join(dir, 'encrypted.key')} }
    - { cert: ${join(dir, 'mx.key')}, key: ${join(dir, 'mx.key')}, ocsp: ${join(dir, 'none.der')} }`);
    const ps = checkConfigFile(file);
    assert.deepEqual(at(ps), ['tls.certificates[0].key', 'tls.certificates[1].cert', 'tls.certificates[1].ocsp']);
    assert.match(ps[0]?.message ?? '', /encrypted/);
  });

  it('checks tls.session_cache.file like the ticket key file, relative to the config', () => {
    // A missing directory is created by run (0700); one under a regular file cannot be.
    const file = config('sessions.yaml', `  certificates: [{ cert: ${join(dir, 'mx.pem')}, key: ${join(dir, 'mx.key')} }]
  session_cache: { file: garbage.pem/sessions }`);
    const ps = checkConfigFile(file);
    assert.deepEqual(at(ps), ['tls.session_cache.file']);
    assert.match(ps[0]?.message ?? '', /garbage\.pem is not a directory, so the TLS session cache file .*garbage\.pem\/sessions cannot be created/);
    assert.deepEqual(checkConfigFile(config('sessions-new.yaml', '  certificates: [{ cert: mx.pem, key: mx.key }]\n  session_cache: { file: new-dir/deeper/sessions }')), []);
    const ok = config('sessions-ok.yaml', '  certificates: [{ cert: mx.pem, key: mx.key }]\n  session_cache: { file: tickets/sessions }');
    assert.deepEqual(checkConfigFile(ok), []);
    assert.equal(loadConfig(ok).tls?.session_cache.file, join(dir, 'tickets', 'sessions'));
  });

  it('reports a ticket key directory that cannot be created and a CA file that is not PEM', () => {
    const file = config('dirs.yaml', `  certificates: [{ cert: ${join(dir, 'mx.pem')}, key: ${join(dir, 'mx.key')} }]
  ticket_keys: { file: ${join(dir, 'mx.pem', 'no-such-dir', 'keys')} }`);
    const ps = checkConfigFile(file);
    assert.deepEqual(at(ps), ['tls.ticket_keys.file']);
    assert.match(ps[0]?.message ?? '', /mx\.pem is not a directory, so the ticket key file .*no-such-dir\/keys cannot be created/);

    const ca = join(dir, 'ca.yaml');
    writeFileSync(ca, `listeners: [{ name: smtp, listen: '127.0.0.1:0' }]
backends:
  servers: [{ address: '127.0.0.1:2526' }]
  tls: { ca: ${join(dir, 'garbage.pem')} }
`);
    const caProblems = checkConfigFile(ca);
    assert.deepEqual(at(caProblems), ['backends.tls.ca']);
    assert.match(caProblems[0]?.message ?? '', /holds no PEM certificate/);
  });

  it('reports schema problems and file problems together', () => {
    const file = config('both.yaml', `  certificates: [{ cert: ${join(dir, 'garbage.pem')}, key: ${join(dir, 'mx.key')} }]`, 'limits: { line_length: 100 }\n');
    assert.deepEqual(at(checkConfigFile(file)), ['tls.certificates[0].cert', 'limits.line_length']);
  });

  it('reports an unreadable config file and never throws', () => {
    const missing = join(dir, 'missing.yaml');
    assert.deepEqual(checkConfigFile(missing), [{ path: '', message: `cannot read ${missing}: no such file` }]);
    assert.deepEqual(checkConfigFile(dir), [{ path: '', message: `cannot read ${dir}: is a directory` }]);
    const bad = join(dir, 'syntax.yaml');
    writeFileSync(bad, 'listeners: [\n');
    const ps = checkConfigFile(bad);
    assert.equal(ps[0]?.path, '');
    assert.match(ps[0]?.message ?? '', /^YAML syntax error: /);
    assert.deepEqual([ps[0]?.line, ps[0]?.col], [2, 1]);
  });
});

describe('loadConfig', () => {
  it('throws CONFIG_UNREADABLE for a missing file and CONFIG_INVALID for a bad one', () => {
    const missing = join(dir, 'missing.yaml');
    assert.throws(() => loadConfig(missing), (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_UNREADABLE' && e.file === missing);
    const bad = join(dir, 'invalid.yaml');
    writeFileSync(bad, 'listeners: []\n');
    assert.throws(() => loadConfig(bad), (e: unknown) => e instanceof ConfigError && e.code === 'CONFIG_INVALID' && e.problems.length === 2);
  });
});
