// ACME against a real CA on loopback (Debian's pebble, validating for real through
// pebble-challtestsrv's DNS, which answers 127.0.0.1 for every name): certificates ordered at
// start with tls-alpn-01 (answered on Postern's own implicit-TLS listener) and with http-01,
// renewed and swapped in while a session stays open, ordered once by two instances sharing
// Redis, and kept through a CA outage with retries backing off. Timings are printed for the
// lead's note (`# acme timing`).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { pebbleMissing, startPebble, type Pebble } from '../helpers/pebble.js';
import { cliBuilt, startPosternProcess, type PosternProcess, type Rec } from '../helpers/postern-process.js';
import { redisAvailable, startRedis, type RedisServer } from '../helpers/redis.js';

/** Connects with SNI `name`, returns the served leaf; `keep` leaves the connection open (greeting read). */
async function served(port: number, name: string, keep = false): Promise<{ cert: X509Certificate; socket: tls.TLSSocket | null }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: name, rejectUnauthorized: false });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('no TLS handshake within 10 s'));
    }, 10_000);
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.once('secureConnect', () => {
      const raw = s.getPeerX509Certificate();
      s.once('data', () => {
        clearTimeout(timer);
        if (!keep) s.destroy();
        resolve({ cert: raw!, socket: keep ? s : null });
      });
    });
  });
}

/** The served certificate once it is pebble's (a worker loads it when its file watch fires), within 10 s. */
async function servedIssued(port: number, name: string): Promise<X509Certificate> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { cert } = await served(port, name);
    if (/Pebble Intermediate CA/.test(cert.issuer) || Date.now() > deadline) return cert;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sends one command on an open session and returns the reply's first line. */
function command(s: tls.TLSSocket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no reply to ${line}`)), 10_000);
    s.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve(d.toString().split('\r\n')[0]!);
    });
    s.write(`${line}\r\n`);
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

/** ms from the process's first log record to `r` (process start-up on a busy machine left out). */
const sinceFirst = (p: PosternProcess, r: Rec): number => Date.parse(String(r.time)) - Date.parse(String(p.records()[0]!.time));

const acmeRecords = (p: PosternProcess, action: string): Rec[] => p.records().filter((r) => r.event === 'acme' && r.action === action);

async function until<T>(probe: () => T | null | undefined | false, what: string, timeoutMs: number, ...show: PosternProcess[]): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${show.map((p) => p.output().slice(-5000)).join('\n----\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('ACME with pebble (real validation on loopback)', { skip: (!cliBuilt() && 'dist/cli.js missing: npm run build') || pebbleMissing() }, () => {
  let pebble: Pebble;
  let sink: Sink;
  let dir: string;
  let tlsPort: number;
  let httpPort: number;
  const running = new Set<PosternProcess>();

  before(async () => {
    tlsPort = await freePort();
    httpPort = await freePort();
    pebble = await startPebble({ httpPort, tlsPort });
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(path.join(tmpdir(), 'postern-acme-'));
  });
  after(async () => {
    for (const p of running) await p.stop(3000);
    await sink?.close();
    await pebble?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  interface Setup {
    name: string;
    domain: string;
    port: number;
    challenge?: 'tls-alpn-01' | 'http-01';
    store?: string;
    renewBefore?: string;
    retryMin?: string;
    redis?: string;
    metricsPort?: number;
    /** Default 1: one process, so every record and connection concerns the same terminator. */
    workers?: number;
  }

  async function start(s: Setup): Promise<PosternProcess> {
    const file = path.join(dir, `${s.name}.yaml`);
    const store = s.store ?? path.join(dir, `${s.name}-store`);
    const challenge = s.challenge ?? 'tls-alpn-01';
    await writeFile(
      file,
      `hostname: ${s.domain}
workers: ${s.workers ?? 1}
shutdown_grace: 1s
listeners:
  - { name: smtps, listen: 127.0.0.1:${s.port}, tls: implicit }
tls:
  acme:
    directory: ${pebble.directory}
    directory_ca: ${pebble.caFile}
    email: postmaster@${s.domain}
    domains: [ ${s.domain} ]
    challenge: ${challenge}
${challenge === 'http-01' ? `    listen: 127.0.0.1:${httpPort}\n` : ''}    store: ${store}
    renew_before: ${s.renewBefore ?? '30d'}
    retry: { min: ${s.retryMin ?? '1s'}, max: 4s }
backends:
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
${s.redis ? `state: { redis: { url: ${s.redis}, prefix: "acme-test:" } }\n` : ''}${s.metricsPort ? `metrics: { listen: 127.0.0.1:${s.metricsPort} }\n` : ''}log: { level: info }
`,
    );
    const p = startPosternProcess(['run', '-c', file]);
    running.add(p);
    return p;
  }

  async function stop(p: PosternProcess): Promise<void> {
    await p.stop(3000);
    running.delete(p);
  }

  it('tls-alpn-01: orders at start, serves the issued certificate, renews it without dropping a session; the metric shows the expiry', async () => {
    const domain = 'mx.alpn.test';
    const metricsPort = await freePort();
    const before = pebble.issued();
    const t0 = Date.now();
    // renew_before longer than pebble's 5-year validity: every look finds the certificate due,
    // so the renewal path runs 1 s (retry.min) after the first issue.
    const p = await start({ name: 'alpn', domain, port: tlsPort, renewBefore: '3650d', retryMin: '1s', metricsPort });
    await p.waitRecord((r) => r.msg === `listening on 127.0.0.1:${tlsPort}`, 15_000);
    const issued = await p.waitRecord((r) => r.event === 'acme' && r.action === 'issued', 60_000);
    const firstLoad = await p.waitRecord((r) => r.event === 'certificate' && r.action === 'loaded', 10_000);
    const issueMs = Date.now() - t0;
    const first = await served(tlsPort, domain, true);
    assert.match(first.cert.issuer, /Pebble Intermediate CA/, `the served certificate is the one pebble issued\n${p.output().slice(-6000)}`);
    assert.ok(first.cert.checkHost(domain), 'for the ordered name');
    assert.equal(firstLoad.name, domain);
    // Real validation happened: pebble connected to Postern's listener and checked the acmeIdentifier.
    assert.ok(p.records().some((r) => r.event === 'session' && r.close === 'quit' && (r.anomalies as unknown[]).length === 0), 'the validator connection was answered as a probe');

    const metrics = await metricsText(metricsPort);
    const line = metrics.split('\n').find((l) => l.startsWith(`postern_tls_certificate_expiry_timestamp_seconds{name="${domain}"}`));
    assert.ok(line, `expiry metric for ${domain}:\n${metrics.split('\n').filter((l) => l.includes('expiry')).join('\n')}`);
    assert.equal(Number(line.split(' ')[1]), Date.parse(first.cert.validTo) / 1000);

    // Renewal: a second certificate, swapped in; the open session goes on.
    const t1 = Date.now();
    await until(() => acmeRecords(p, 'issued').length >= 2, 'the renewal', 60_000);
    const renewMs = Date.now() - t1;
    await until(() => p.records().filter((r) => r.event === 'certificate' && r.action === 'loaded').length >= 2, 'the renewed certificate loaded', 10_000);
    const second = await served(tlsPort, domain);
    assert.notEqual(second.cert.serialNumber, first.cert.serialNumber, 'a new connection gets the renewed certificate');
    assert.match(await command(first.socket!, 'NOOP'), /^250/, 'the session opened before the renewal still works');
    first.socket!.destroy();
    assert.ok(pebble.issued() - before >= 2);
    const renewed = acmeRecords(p, 'issued')[1]!;
    console.log(
      `# acme timing: tls-alpn-01 issued ${sinceFirst(p, issued)} ms after the process's first record (order ${String(issued.ms)} ms; ${issueMs} ms from spawn), ` +
        `renewal order ${String(renewed.ms)} ms, new certificate served ${renewMs} ms after the first issue was seen`,
    );
    await stop(p);
  });

  it('http-01 with two workers: one orders (the store lock), both serve the result; a restart with the certificate in the store orders nothing', async () => {
    const domain = 'mx.http.test';
    const port = await freePort();
    const t0 = Date.now();
    const p = await start({ name: 'http', domain, port, challenge: 'http-01', workers: 2 });
    const issued = await p.waitRecord((r) => r.event === 'acme' && r.action === 'issued', 60_000);
    await p.waitRecord((r) => r.event === 'certificate' && r.action === 'loaded', 10_000);
    const issueMs = Date.now() - t0;
    // Each worker loads it (the one that ordered at once, the other through its file watch).
    await until(() => p.records().filter((r) => r.event === 'certificate' && r.action === 'loaded').length >= 2, 'both workers loading it', 10_000);
    const cert = await servedIssued(port, domain);
    assert.match(cert.issuer, /Pebble Intermediate CA/);
    // Every worker serves it: six connections in a row (the kernel spreads them over both
    // workers) see its serial, once the slower worker's watch has swapped it in.
    const deadline = Date.now() + 15_000;
    for (let streak = 0; streak < 6; ) {
      const serial = (await served(port, domain)).cert.serialNumber;
      streak = serial === cert.serialNumber ? streak + 1 : 0;
      if (streak === 0) {
        assert.ok(Date.now() < deadline, `every worker serves it within 15 s (still ${serial}, not ${cert.serialNumber})`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    assert.equal(acmeRecords(p, 'order').length, 1, 'one order for the two workers');
    await stop(p);
    const count = pebble.issued();
    const again = await start({ name: 'http', domain, port, challenge: 'http-01' });
    await again.waitRecord((r) => r.msg === `listening on 127.0.0.1:${port}`, 15_000);
    assert.equal((await served(port, domain)).cert.serialNumber, cert.serialNumber, 'the stored certificate serves after a restart');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(acmeRecords(again, 'order').length, 0, 'not due: no order');
    assert.equal(pebble.issued(), count);
    console.log(`# acme timing: http-01 issued ${sinceFirst(p, issued)} ms after the process's first record (order ${String(issued.ms)} ms; ${issueMs} ms from spawn)`);
    await stop(again);
  });

  it('a CA outage: the failure is logged with its reason, retried with backoff, and the old certificate stays in use', async () => {
    const domain = 'mx.outage.test';
    const port = tlsPort;
    const store = path.join(dir, 'outage-store');
    const p = await start({ name: 'outage', domain, port, store });
    await p.waitRecord((r) => r.event === 'certificate' && r.action === 'loaded', 60_000);
    const good = (await served(port, domain)).cert;
    await stop(p);
    await pebble.stopCa();
    let outage: PosternProcess | null = null;
    try {
      // Due at once (renew_before beyond the validity), and the CA is away.
      const q = await start({ name: 'outage2', domain, port, store, renewBefore: '3650d', retryMin: '500ms' });
      outage = q;
      await until(() => acmeRecords(q, 'failed').length >= 3, 'three failed attempts', 30_000, q);
      const failed = acmeRecords(q, 'failed');
      assert.match(String(failed[0]!.reason), /ECONNREFUSED|connect/i, 'the reason names the refused connection');
      assert.deepEqual(
        failed.slice(0, 3).map((r) => r.retry_in_ms),
        [500, 1000, 2000],
        'retries back off, doubling from retry.min',
      );
      assert.equal((await served(port, domain)).cert.serialNumber, good.serialNumber, 'the issued certificate is still served');
      await stop(q);
    } finally {
      if (outage) await stop(outage);
      await pebble.startCa();
    }
  });

  it('two instances on one Redis: exactly one order, both serve its certificate', { skip: !redisAvailable() && 'redis-server missing' }, async () => {
    const redis: RedisServer = await startRedis();
    try {
      const domain = 'mx.shared.test';
      const before = pebble.issued();
      // Only one can listen where pebble validates; the other finds nothing local and answers from Redis if it won the lock.
      const portB = await freePort();
      const [a, b] = await Promise.all([
        start({ name: 'shared-a', domain, port: tlsPort, redis: redis.url }),
        start({ name: 'shared-b', domain, port: portB, redis: redis.url }),
      ]);
      await until(() => acmeRecords(a, 'issued').length + acmeRecords(b, 'issued').length >= 1, 'an issue', 60_000, a, b);
      await a.waitRecord((r) => r.event === 'certificate' && r.action === 'loaded', 15_000);
      await b.waitRecord((r) => r.event === 'certificate' && r.action === 'loaded', 15_000);
      const ca = (await served(tlsPort, domain)).cert;
      const cb = (await served(portB, domain)).cert;
      assert.equal(ca.serialNumber, cb.serialNumber, 'both serve the same certificate');
      assert.match(ca.issuer, /Pebble Intermediate CA/);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(acmeRecords(a, 'order').length + acmeRecords(b, 'order').length, 1, 'exactly one order');
      assert.equal(pebble.issued() - before, 1, 'pebble issued one certificate');
      assert.equal(acmeRecords(a, 'loaded').length + acmeRecords(b, 'loaded').length, 1, 'the other loaded it from Redis');
      await stop(a);
      await stop(b);
    } finally {
      await redis.stop();
    }
  });
});
