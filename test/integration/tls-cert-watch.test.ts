// Certificate files replaced on disk are served within seconds, without SIGHUP (issue 25 §2):
// certbot's way (new files renamed over the old), a Kubernetes secret's way (the `..data`
// symlink swapped), and a mismatched pair (refused with a record, the old pair kept). Over real
// TLS to a real `postern run`; the expiry metric follows the served certificate, and a
// certificate within 14 days of its end is warned about at start.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { freePort } from '../helpers/net.js';
import { cliBuilt, startPosternProcess, type PosternProcess, type Rec } from '../helpers/postern-process.js';

const NAME = 'mx.watch.test';

function servedCert(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: NAME, rejectUnauthorized: false });
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.once('error', reject);
    s.once('secureConnect', () => {
      const c = s.getPeerX509Certificate()!;
      s.destroy();
      resolve(c);
    });
  });
}

function metricsText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

async function expiryMetric(port: number): Promise<number | null> {
  const line = (await metricsText(port)).split('\n').find((l) => l.startsWith(`postern_tls_certificate_expiry_timestamp_seconds{name="${NAME}"}`));
  return line ? Number(line.split(' ')[1]) : null;
}

/** How long until the served certificate's serial is `serial` (ms), failing after 8 s. */
async function untilServed(port: number, serial: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    if ((await servedCert(port)).serialNumber === serial) return Date.now() - started;
    if (Date.now() - started > 8000) throw new Error(`serial ${serial} not served within 8 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const serialOf = (l: Leaf): string => new X509Certificate(l.certPem).serialNumber;
const certRecords = (p: PosternProcess, action: string): Rec[] => p.records().filter((r) => r.event === 'certificate' && r.action === action);

describe('watched certificate files (real TLS, real process)', { skip: !cliBuilt() && 'dist/cli.js missing: npm run build' }, () => {
  let pki: TestPki;
  let leaves: Leaf[];
  let sink: Sink;
  let dir: string;
  const running = new Set<PosternProcess>();

  before(async () => {
    pki = await makePki();
    leaves = [];
    // One second apart, so that each has its own notAfter (the metric must follow).
    for (const n of ['one', 'two', 'three']) {
      leaves.push(await pki.leaf(n, 'ecdsa', [NAME]));
      await new Promise((r) => setTimeout(r, 1100));
    }
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(path.join(tmpdir(), 'postern-watch-'));
  });
  after(async () => {
    for (const p of running) await p.stop(3000);
    await sink?.close();
    await pki?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const yaml = (port: number, metricsPort: number, cert: string, key: string, interval: string): string =>
    `hostname: ${NAME}
workers: 1
shutdown_grace: 1s
listeners:
  - { name: smtps, listen: 127.0.0.1:${port}, tls: implicit }
tls:
  certificates: [ { cert: ${cert}, key: ${key} } ]
  watch: { interval: ${interval} }
backends:
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
metrics: { listen: 127.0.0.1:${metricsPort} }
log: { level: info }
`;

  async function start(name: string, cert: string, key: string, interval: string): Promise<{ p: PosternProcess; port: number; metricsPort: number; file: string }> {
    const port = await freePort();
    const metricsPort = await freePort();
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(file, yaml(port, metricsPort, cert, key, interval));
    const p = startPosternProcess(['run', '-c', file]);
    running.add(p);
    await p.waitRecord((r) => r.msg === `listening on 127.0.0.1:${port}`, 15_000);
    return { p, port, metricsPort, file };
  }

  /** Writes `data` beside `file` and renames it over, as certbot and acme.sh do. */
  async function replace(file: string, from: string): Promise<void> {
    await copyFile(from, `${file}.new`);
    await rename(`${file}.new`, file);
  }

  it('files renamed over the old ones (certbot) are served within seconds; a mismatched pair is refused and the old one kept', async () => {
    const d = path.join(dir, 'certbot');
    await mkdir(d);
    const cert = path.join(d, 'fullchain.pem');
    const key = path.join(d, 'privkey.pem');
    await copyFile(leaves[0]!.cert, cert);
    await copyFile(leaves[0]!.key, key);
    const { p, port, metricsPort } = await start('certbot', cert, key, '5s');
    assert.equal((await servedCert(port)).serialNumber, serialOf(leaves[0]!));
    assert.equal(await expiryMetric(metricsPort), Date.parse(new X509Certificate(leaves[0]!.certPem).validTo) / 1000);

    // Within the 14-day window from the start (the test PKI's certificates last 2 days).
    const warned = certRecords(p, 'expiring');
    assert.equal(warned.length, 1, 'one warning at start for a certificate within 14 days of its end');
    assert.equal(warned[0]!.level, 'warn');
    assert.equal(warned[0]!.name, NAME);

    // certbot renews: key then certificate, each renamed into place.
    await replace(key, leaves[1]!.key);
    await replace(cert, leaves[1]!.cert);
    const ms = await untilServed(port, serialOf(leaves[1]!));
    const loaded = await p.waitRecord((r) => r.event === 'certificate' && r.action === 'loaded', 5000);
    assert.equal(loaded.name, NAME);
    assert.equal(await expiryMetric(metricsPort), Date.parse(new X509Certificate(leaves[1]!.certPem).validTo) / 1000, 'the metric follows the new certificate');
    assert.equal(certRecords(p, 'expiring').length, 2, 'the new certificate is warned about too, once');

    // Only the certificate replaced, its key not: the pair does not match and is refused.
    await replace(cert, leaves[2]!.cert);
    const refused = await p.waitRecord((r) => r.event === 'certificate' && r.action === 'refused', 8000);
    assert.match(String(refused.reason), /not the unencrypted key|does not belong/);
    assert.equal(refused.level, 'warn');
    assert.equal((await servedCert(port)).serialNumber, serialOf(leaves[1]!), 'the previous pair is still served');
    // The key follows: now the pair matches and loads.
    await replace(key, leaves[2]!.key);
    await untilServed(port, serialOf(leaves[2]!));
    console.log(`# cert watch: certbot-style replacement served after ${ms} ms`);
    await p.stop(3000);
    running.delete(p);
  });

  it('a Kubernetes secret (the ..data symlink swapped) is served within seconds', async () => {
    // The layout kubelet makes: tls.crt -> ..data/tls.crt, ..data -> ..2026_v1 (a timestamped directory).
    const d = path.join(dir, 'k8s');
    await mkdir(path.join(d, '..v1'), { recursive: true });
    await copyFile(leaves[0]!.cert, path.join(d, '..v1', 'tls.crt'));
    await copyFile(leaves[0]!.key, path.join(d, '..v1', 'tls.key'));
    await symlink('..v1', path.join(d, '..data'));
    await symlink('..data/tls.crt', path.join(d, 'tls.crt'));
    await symlink('..data/tls.key', path.join(d, 'tls.key'));
    const { p, port } = await start('k8s', path.join(d, 'tls.crt'), path.join(d, 'tls.key'), '1s');
    assert.equal((await servedCert(port)).serialNumber, serialOf(leaves[0]!));

    await mkdir(path.join(d, '..v2'));
    await copyFile(leaves[1]!.cert, path.join(d, '..v2', 'tls.crt'));
    await copyFile(leaves[1]!.key, path.join(d, '..v2', 'tls.key'));
    await symlink('..v2', path.join(d, '..data_tmp'));
    await rename(path.join(d, '..data_tmp'), path.join(d, '..data'));
    const ms = await untilServed(port, serialOf(leaves[1]!));
    // The record can reach the test's reader after the new certificate already served (CI under load).
    await p.waitRecord((r) => r.event === 'certificate' && r.action === 'loaded', 5000);
    assert.equal(certRecords(p, 'loaded').length, 1);
    console.log(`# cert watch: Kubernetes symlink swap served after ${ms} ms`);
    await p.stop(3000);
    running.delete(p);
  });

  it('after a SIGHUP that names other files, those are the ones watched', async () => {
    const d = path.join(dir, 'hup');
    await mkdir(d);
    for (const [i, n] of [[0, 'a'], [1, 'b']] as const) {
      await copyFile(leaves[i]!.cert, path.join(d, `${n}.pem`));
      await copyFile(leaves[i]!.key, path.join(d, `${n}.key`));
    }
    const { p, port, metricsPort, file } = await start('hup', path.join(d, 'a.pem'), path.join(d, 'a.key'), '5s');
    assert.equal((await servedCert(port)).serialNumber, serialOf(leaves[0]!));
    await writeFile(file, yaml(port, metricsPort, path.join(d, 'b.pem'), path.join(d, 'b.key'), '5s'));
    p.child.kill('SIGHUP');
    await untilServed(port, serialOf(leaves[1]!));
    await replace(path.join(d, 'b.key'), leaves[2]!.key);
    await replace(path.join(d, 'b.pem'), leaves[2]!.cert);
    await untilServed(port, serialOf(leaves[2]!));
    await p.stop(3000);
    running.delete(p);
  });
});
