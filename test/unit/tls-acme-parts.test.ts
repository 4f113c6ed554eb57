// The pieces behind watched certificates and ACME, on real files and sockets: the file watch
// (rename, in-place write, symlink swap, debounce), the expiry warning and metric feed, the
// ACME store (stand-in certificate, atomic pair writes, the lock file), the challenge board
// and the http-01 responder.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ChallengeBoard } from '../../src/tls/acme-challenges.js';
import { Http01Responder } from '../../src/tls/acme-http.js';
import { selfSigned } from '../../src/tls/acme-placeholder.js';
import { AcmeStore, isPlaceholder, PLACEHOLDER_ORG } from '../../src/tls/acme-store.js';
import { loadCertificate } from '../../src/tls/certificates.js';
import { certificateName, ExpiryWatch } from '../../src/tls/expiry.js';
import { FileWatch } from '../../src/tls/file-watch.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'postern-acme-parts-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function until(probe: () => boolean, what: string, ms = 5000): Promise<number> {
  const t0 = Date.now();
  while (!probe()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - t0;
}

describe('FileWatch', () => {
  it('reports files renamed over the old ones (one call for the burst) and an in-place write', async () => {
    const d = path.join(dir, 'watch');
    await mkdir(d);
    const f = path.join(d, 'cert.pem');
    const k = path.join(d, 'key.pem');
    await writeFile(f, 'one');
    await writeFile(k, 'one');
    let calls = 0;
    const w = await FileWatch.start([f, k], { intervalMs: 0, debounceMs: 100, onChange: () => calls++ });
    try {
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(calls, 0, 'nothing changed yet');
      // certbot: both files renamed into place, one after the other: one reload.
      await writeFile(`${f}.tmp`, 'two');
      await rename(`${f}.tmp`, f);
      await writeFile(`${k}.tmp`, 'two');
      await rename(`${k}.tmp`, k);
      await until(() => calls === 1, 'the rename');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(calls, 1, 'one call for the burst');
      await writeFile(f, 'three, longer');
      await until(() => calls === 2, 'the in-place write');
    } finally {
      w.close();
    }
  });

  it('the stat poll alone catches a swap of a symlinked directory (no event for the file itself)', async () => {
    const d = path.join(dir, 'k8s');
    await mkdir(path.join(d, 'v1'), { recursive: true });
    await mkdir(path.join(d, 'v2'), { recursive: true });
    await writeFile(path.join(d, 'v1', 'tls.crt'), 'one');
    await writeFile(path.join(d, 'v2', 'tls.crt'), 'two');
    // The watched file is two symlinks away from the directory whose link changes.
    const outer = path.join(dir, 'k8s-mount');
    await mkdir(outer);
    await symlink(path.join(d, 'v1'), path.join(d, 'data'));
    await symlink(path.join(d, 'data', 'tls.crt'), path.join(outer, 'tls.crt'));
    let calls = 0;
    const w = await FileWatch.start([path.join(outer, 'tls.crt')], { intervalMs: 200, debounceMs: 50, onChange: () => calls++ });
    try {
      await symlink(path.join(d, 'v2'), path.join(d, 'data.tmp'));
      await rename(path.join(d, 'data.tmp'), path.join(d, 'data'));
      await until(() => calls === 1, 'the poll');
    } finally {
      w.close();
    }
  });
});

describe('ExpiryWatch', () => {
  it('feeds the metric by name and warns once per certificate within the window', async () => {
    const s = new AcmeStore({ store: path.join(dir, 'exp'), domains: ['mx.exp.test'] });
    await s.prepare();
    const c = await loadCertificate(s.pair, 0);
    const warns: Record<string, unknown>[] = [];
    const fed: Map<string, number>[] = [];
    const end = Date.parse(c.leaf.validTo);
    let now = end - 20 * 86_400_000;
    const e = new ExpiryWatch({ logger: { warn: (o) => void warns.push(o as Record<string, unknown>) }, windowMs: 14 * 86_400_000, sink: (m) => void fed.push(new Map(m)), now: () => now });
    try {
      e.update([c]);
      assert.deepEqual([...fed[0]!], [['mx.exp.test', end / 1000]]);
      assert.equal(warns.length, 0, '20 days left: no warning');
      now = end - 13 * 86_400_000;
      e.check();
      e.check();
      assert.equal(warns.length, 1, 'once');
      assert.deepEqual({ ...warns[0], not_after: undefined }, { event: 'certificate', action: 'expiring', name: 'mx.exp.test', file: s.pair.cert, not_after: undefined, days_left: 13 });
      assert.equal(certificateName(c), 'mx.exp.test');
    } finally {
      e.close();
    }
  });
});

describe('AcmeStore', () => {
  it('prepares a self-signed stand-in for the domains, recognised as such; writes pairs only when they match', async () => {
    const s = new AcmeStore({ store: path.join(dir, 'store'), domains: ['mx.store.test', 'b.store.test'] });
    await s.prepare();
    const cur = await s.current();
    assert.ok(cur && isPlaceholder(cur.leaf));
    assert.equal(cur.leaf.subjectAltName, 'DNS:mx.store.test, DNS:b.store.test');
    const loaded = await loadCertificate(s.pair, 0);
    assert.deepEqual(loaded.names, ['mx.store.test', 'b.store.test'], 'it loads as a certificate pair');
    const other = await selfSigned(['mx.store.test'], PLACEHOLDER_ORG);
    await assert.rejects(s.writePair(other.certPem, cur.keyPem), /does not belong/);
    await s.writePair(other.certPem, other.keyPem);
    assert.equal((await s.current())!.leaf.serialNumber, new X509Certificate(other.certPem).serialNumber);
    await s.prepare();
    assert.equal((await s.current())!.leaf.serialNumber, new X509Certificate(other.certPem).serialNumber, 'prepare keeps what is there');
  });

  it('lock file: one holder; a stale lock is taken over; only the holder unlocks', async () => {
    const s = new AcmeStore({ store: path.join(dir, 'lock'), domains: ['mx.lock.test'] });
    await s.prepare();
    assert.equal(await s.tryLock('a', 60_000), true);
    assert.equal(await s.tryLock('b', 60_000), false);
    await s.unlock('b');
    assert.equal(await s.tryLock('b', 60_000), false, 'b cannot unlock a');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(await s.tryLock('b', 10), true, 'older than the TTL: taken over');
    await s.unlock('b');
    assert.equal(await s.tryLock('c', 60_000), true);
  });
});

describe('ChallengeBoard and the http-01 responder', () => {
  it('answers a pending token from another process of the host (the store), 404 otherwise', async () => {
    const cdir = path.join(dir, 'challenges');
    await mkdir(cdir);
    const mine = new ChallengeBoard(cdir, null);
    const theirs = new ChallengeBoard(cdir, null);
    const r = await Http01Responder.listen({ host: '127.0.0.1', port: 0, text: '127.0.0.1:0' }, theirs);
    const get = (p: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: r.port, path: p }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        }).on('error', reject);
      });
    try {
      await mine.put('http-01', 'tok_EN-1', 'tok_EN-1.thumbprint');
      assert.deepEqual(await get('/.well-known/acme-challenge/tok_EN-1'), { status: 200, body: 'tok_EN-1.thumbprint' });
      assert.equal((await get('/.well-known/acme-challenge/other')).status, 404);
      assert.equal((await get('/.well-known/acme-challenge/..%2F..%2Fetc%2Fpasswd')).status, 404, 'tokens are base64url only');
      assert.equal((await get('/')).status, 404);
      await mine.remove('http-01', 'tok_EN-1');
      assert.equal((await get('/.well-known/acme-challenge/tok_EN-1')).status, 404, 'gone once removed');
    } finally {
      await r.close();
    }
  });
});
