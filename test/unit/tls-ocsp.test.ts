// OCSP responses from `openssl ocsp`: parsing, staple decisions, robustness against junk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DerError } from '../../src/tls/der.js';
import { normaliseSerial, OcspStaple, parseOcspResponse } from '../../src/tls/ocsp.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { X509Certificate } from 'node:crypto';

describe('OCSP', () => {
  let pki: TestPki;
  let leaf: Leaf;
  let good: Buffer;
  let serial: string;
  const logs: string[] = [];
  const log = { info: (_o: object, m?: string) => void logs.push(`info ${m}`), warn: (_o: object, m?: string) => void logs.push(`warn ${m}`) };

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('ocsp-leaf', 'rsa', ['ocsp.example']);
    good = await readFile(await pki.ocsp(leaf, { minutes: 60 }));
    serial = normaliseSerial(new X509Certificate(leaf.certPem).serialNumber);
  });
  after(() => pki.cleanup());

  it('reads status, serial and validity from a real response', () => {
    const info = parseOcspResponse(good);
    assert.equal(info.responseStatus, 0);
    assert.equal(info.responses.length, 1);
    const r = info.responses[0]!;
    assert.equal(r.serial, serial);
    assert.equal(r.status, 'good');
    assert.ok(r.nextUpdate !== null && Math.abs(r.nextUpdate - r.thisUpdate - 3600_000) < 2000);
  });

  it('reads a revoked status', async () => {
    const revoked = parseOcspResponse(await readFile(await pki.ocsp(leaf, { status: 'revoked' })));
    assert.equal(revoked.responses[0]!.status, 'revoked');
  });

  it('throws DerError (never anything else) on truncated or random input', () => {
    for (let n = 0; n < good.length; n += 7) {
      try {
        parseOcspResponse(good.subarray(0, n));
      } catch (e) {
        assert.ok(e instanceof DerError, `truncated at ${n}: ${String(e)}`);
      }
    }
    for (let i = 0; i < 300; i++) {
      const junk = Buffer.concat([Buffer.from([0x30, 0x82]), randomBytes(i)]);
      try {
        parseOcspResponse(junk);
      } catch (e) {
        assert.ok(e instanceof DerError, String(e));
      }
    }
  });

  it('staples only a successful response for this certificate, and not after nextUpdate', async () => {
    const file = path.join(pki.dir, 'staple.der');
    await writeFile(file, good);
    const s = new OcspStaple(file, serial, log);
    await s.load();
    const next = parseOcspResponse(good).responses[0]!.nextUpdate!;
    assert.deepEqual(s.response(next - 1000), good);
    assert.equal(s.response(next + 1), null);
    assert.ok(logs.some((l) => /expired/.test(l)));
    const other = new OcspStaple(file, 'ABCDEF', log);
    await other.load();
    assert.equal(other.response(), null, 'a response for another serial is not stapled');
    const missing = new OcspStaple(path.join(pki.dir, 'missing.der'), serial, log);
    await missing.load();
    assert.equal(missing.response(), null);
  });
});
