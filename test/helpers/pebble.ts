// A real ACME CA on loopback: Debian's `pebble` (the Let's Encrypt test CA) with
// `pebble-challtestsrv` as its DNS server, answering every name with 127.0.0.1, so pebble's
// validator connects to Postern for real. Its validation ports (`httpPort`, `tlsPort`) are
// the ports Postern answers challenges on. Debian's pebble ships no test certificates: the
// directory's HTTPS certificate is made here with openssl, and its CA handed to Postern as
// `tls.acme.directory_ca`.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import https from 'node:https';
import net from 'node:net';
import { promisify } from 'node:util';
import { freePort } from './net.js';

const run = promisify(execFile);

export const PEBBLE = '/usr/bin/pebble';
export const CHALLTESTSRV = '/usr/bin/pebble-challtestsrv';

export function pebbleMissing(): string | false {
  const ok = spawnSync(PEBBLE, ['-version']).error === undefined && spawnSync(CHALLTESTSRV, ['-h']).error === undefined;
  return ok ? false : 'pebble / pebble-challtestsrv missing (apt-get install pebble)';
}

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** PEM file of the CA that signed the directory's HTTPS certificate. */
  caFile: string;
  /** The management port (roots, intermediates). */
  managementPort: number;
  /** Pebble's log so far (orders, validations). */
  output(): string;
  /** How many certificates pebble issued so far (from its log). */
  issued(): number;
  /** PEM of pebble's current root (what the issued chains end at). */
  root(): Promise<string>;
  /** Stops pebble alone (the CA is away; its DNS stays). */
  stopCa(): Promise<void>;
  /** Starts pebble again on the same ports (a new CA: new roots, no accounts). */
  startCa(): Promise<void>;
  stop(): Promise<void>;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listened on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopChild(c: ChildProcess | null): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}

/** Pebble validating http-01 against `httpPort` and tls-alpn-01 against `tlsPort` on 127.0.0.1. */
export async function startPebble(opts: { httpPort: number; tlsPort: number }): Promise<Pebble> {
  const dir = await mkdtemp(path.join(tmpdir(), 'postern-pebble-'));
  const openssl = (args: string[]) => run('openssl', args, { cwd: dir, timeout: 20_000 });
  const caFile = path.join(dir, 'ca.pem');
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-keyout', 'ca.key', '-out', caFile, '-days', '3',
    '-subj', '/O=Postern Test/CN=pebble directory CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-noenc', '-keyout', 'server.key', '-out', 'server.csr',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', caFile, '-CAkey', 'ca.key', '-set_serial', '0x51', '-days', '2', '-copy_extensions', 'copy', '-out', 'server.pem']);

  const [acmePort, managementPort, dnsPort, challMgmt] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: path.join(dir, 'server.pem'),
      privateKey: path.join(dir, 'server.key'),
      httpPort: opts.httpPort,
      tlsPort: opts.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  };
  const configFile = path.join(dir, 'pebble.json');
  await writeFile(configFile, JSON.stringify(config));

  let out = '';
  const dns = spawn(CHALLTESTSRV, ['-defaultIPv4', '127.0.0.1', '-defaultIPv6', '', '-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '',
    '-tlsalpn01', '', '-management', `127.0.0.1:${challMgmt}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  dns.stdout!.on('data', (d: Buffer) => (out += `[dns] ${d.toString()}`));
  dns.stderr!.on('data', (d: Buffer) => (out += `[dns] ${d.toString()}`));
  await waitForPort(challMgmt, 10_000);

  let ca: ChildProcess | null = null;
  const startCa = async () => {
    ca = spawn(PEBBLE, ['-config', configFile, '-dnsserver', `127.0.0.1:${dnsPort}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // No sleeps before validating, no bad-nonce injection, no reused authorizations: every
      // order is validated for real, quickly and deterministically.
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    });
    ca.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    ca.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitForPort(acmePort, 15_000);
  };
  await startCa();
  const caPem = await readFile(caFile);

  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile,
    managementPort,
    output: () => out,
    issued: () => (out.match(/Issued certificate serial/g) ?? []).length,
    root: () =>
      new Promise((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port: managementPort, path: '/roots/0', ca: caPem }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(body));
          })
          .on('error', reject);
      }),
    stopCa: () => stopChild(ca),
    startCa,
    stop: async () => {
      await stopChild(ca);
      await stopChild(dns);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
