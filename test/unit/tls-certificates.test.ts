// Which certificate serves which name: SAN parsing, grouping by key type, SNI lookup, load errors.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dnsNames, loadCertificate, lookupSni, planSni } from '../../src/tls/certificates.js';
import { TlsConfigError } from '../../src/tls/errors.js';
import { makePki, type TestPki } from '../helpers/certs.js';

describe('certificates', () => {
  it('takes DNS names from subjectAltName, lower-cased, skipping other kinds and odd entries', () => {
    assert.deepEqual(dnsNames('DNS:MX.Example.org, IP Address:192.0.2.1, DNS:*.w.example.org, email:a@b, DNS:"a,b", DNS:mx.example.org'), [
      'mx.example.org',
      '*.w.example.org',
    ]);
    assert.deepEqual(dnsNames(undefined), []);
  });

  const certs = [
    { names: ['mx.example.org', 'smtp.example.org'], keyType: 'rsa' }, // 0 default
    { names: ['mx.example.org'], keyType: 'ec' }, //                       1 same name, other type
    { names: ['other.example.net', '*.wild.example.net'], keyType: 'rsa' }, // 2
    { names: ['other.example.net'], keyType: 'rsa' }, //                    3 second RSA for a name: never chosen
    { names: ['other.example.net'], keyType: 'ec' }, //                     4
  ];

  it('groups one certificate per key type per name, the first in config order winning', () => {
    const plan = planSni(certs);
    assert.deepEqual(plan.default.members, [0, 1]);
    assert.deepEqual(plan.byName.get('mx.example.org')!.members, [0, 1]);
    assert.deepEqual(plan.byName.get('smtp.example.org')!.members, [0]);
    assert.deepEqual(plan.byName.get('other.example.net')!.members, [2, 4]);
    assert.deepEqual(plan.byName.get('*.wild.example.net')!.members, [2]);
    assert.equal(plan.byName.get('mx.example.org'), plan.default, 'groups are shared, not duplicated');
    assert.equal(plan.groups.length, 4);
  });

  it('looks up exact names, then a wildcard for exactly one label, else the default', () => {
    const plan = planSni(certs);
    assert.equal(lookupSni(plan, 'OTHER.example.net.').members.join(), '2,4');
    assert.equal(lookupSni(plan, 'a.wild.example.net').members.join(), '2');
    assert.equal(lookupSni(plan, 'a.b.wild.example.net'), plan.default);
    assert.equal(lookupSni(plan, 'wild.example.net'), plan.default);
    assert.equal(lookupSni(plan, null), plan.default);
    assert.equal(lookupSni(plan, 'unknown.test'), plan.default);
  });

  describe('loading', () => {
    let pki: TestPki;
    before(async () => {
      pki = await makePki();
    });
    after(() => pki.cleanup());

    it('loads RSA and ECDSA, refuses a key that does not match or a file that is not PEM', async () => {
      const r = await pki.leaf('l-rsa', 'rsa', ['a.example']);
      const e = await pki.leaf('l-ec', 'ecdsa', ['b.example']);
      const lr = await loadCertificate({ cert: r.cert, key: r.key }, 0);
      const le = await loadCertificate({ cert: e.cert, key: e.key }, 1);
      assert.equal(lr.keyType, 'rsa');
      assert.equal(le.keyType, 'ec');
      assert.deepEqual(le.names, ['b.example']);
      await assert.rejects(loadCertificate({ cert: r.cert, key: e.key }, 0), (err: unknown) => err instanceof TlsConfigError && err.code === 'TLS_CERTIFICATE' && err.path === e.key);
      await assert.rejects(loadCertificate({ cert: r.key, key: r.key }, 0), (err: unknown) => err instanceof TlsConfigError && err.path === r.key);
      await assert.rejects(loadCertificate({ cert: '/nonexistent.pem', key: r.key }, 0), /cannot read certificate/);
    });

    it('a pair caught between the renames of an update (key replaced, certificate not yet) loads once the update is whole', async () => {
      // The failure seen in CI: a worker starting while the ACME store replaced key.pem, then cert.pem.
      const a = await pki.leaf('u-a', 'ecdsa', ['u.example']);
      const b = await pki.leaf('u-b', 'ecdsa', ['u.example']);
      const dir = mkdtempSync(join(tmpdir(), 'postern-pair-'));
      try {
        const pair = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
        copyFileSync(a.cert, pair.cert);
        writeFileSync(`${pair.key}.tmp`, readFileSync(b.key));
        renameSync(`${pair.key}.tmp`, pair.key); // the new key, the old certificate: mismatched
        const loading = loadCertificate(pair, 0);
        setTimeout(() => {
          writeFileSync(`${pair.cert}.tmp`, readFileSync(b.cert));
          renameSync(`${pair.cert}.tmp`, pair.cert);
        }, 350);
        const loaded = await loading;
        assert.equal(loaded.certPem, readFileSync(b.cert, 'utf8'), 'the new pair, whole');
        // A pair that stays mismatched is still refused, after the retries (about a second).
        copyFileSync(a.cert, pair.cert);
        const t0 = Date.now();
        await assert.rejects(loadCertificate(pair, 0), /is not the unencrypted key of .*the key does not belong to the certificate/);
        assert.ok(Date.now() - t0 >= 900, `refused after the retries (${Date.now() - t0} ms)`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
