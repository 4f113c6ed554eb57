// Test PKI made with the `openssl` CLI in a temp dir: CAs, RSA-2048 and ECDSA P-256 leaf
// certificates with SAN DNS names, and real OCSP responses signed by the CA.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type KeyType = 'rsa' | 'ecdsa';

export interface Ca {
  name: string;
  cert: string; // path
  key: string; // path
  pem: string; // contents of cert
}

export interface Leaf {
  name: string;
  type: KeyType;
  dns: string[];
  cert: string; // path
  key: string; // path
  certPem: string;
  keyPem: string;
  ca: Ca;
}

export interface TestPki {
  dir: string;
  /** A CA (new unless one with that name was made before). */
  ca(name?: string): Promise<Ca>;
  /** A leaf certificate signed by `ca` (default: the CA named 'ca'). */
  leaf(name: string, type: KeyType, dns: string[], ca?: Ca): Promise<Leaf>;
  /** A DER OCSP response for `leaf`, signed by its CA, valid for `minutes`; status 'good' or 'revoked'. */
  ocsp(leaf: Leaf, opts?: { minutes?: number; status?: 'good' | 'revoked' }): Promise<string>;
  cleanup(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('openssl', args, { cwd, timeout: 20_000 });
  return stdout;
}

function keyArgs(type: KeyType): string[] {
  return type === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
}

export async function makePki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(tmpdir(), 'postern-pki-'));
  const cas = new Map<string, Promise<Ca>>();
  let serial = 0x1000;

  // Memoised as promises: leaves made concurrently must share one CA, not race to create it.
  const ca = (name = 'ca'): Promise<Ca> => {
    let p = cas.get(name);
    if (!p) cas.set(name, (p = makeCa(name)));
    return p;
  };

  const makeCa = async (name: string): Promise<Ca> => {
    const cert = path.join(dir, `${name}.pem`);
    const key = path.join(dir, `${name}.key`);
    await openssl(
      ['req', '-x509', ...keyArgs('ecdsa'), '-noenc', '-keyout', key, '-out', cert, '-days', '3', '-subj', `/O=Postern Test/CN=${name}`,
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'],
      dir,
    );
    return { name, cert, key, pem: await readFile(cert, 'utf8') };
  };

  const leaf = async (name: string, type: KeyType, dns: string[], issuer?: Ca): Promise<Leaf> => {
    const signer = issuer ?? (await ca());
    const cert = path.join(dir, `${name}.pem`);
    const key = path.join(dir, `${name}.key`);
    const csr = path.join(dir, `${name}.csr`);
    const san = dns.map((d) => `DNS:${d}`).join(',');
    await openssl(['req', '-new', ...keyArgs(type), '-noenc', '-keyout', key, '-out', csr, '-subj', `/O=Postern Test/CN=${dns[0] ?? name}`, '-addext', `subjectAltName=${san}`], dir);
    serial += 1;
    await openssl(
      ['x509', '-req', '-in', csr, '-CA', signer.cert, '-CAkey', signer.key, '-set_serial', `0x${serial.toString(16)}`, '-days', '2',
        '-copy_extensions', 'copy', '-out', cert],
      dir,
    );
    return { name, type, dns, cert, key, certPem: await readFile(cert, 'utf8'), keyPem: await readFile(key, 'utf8'), ca: signer };
  };

  const ocsp = async (l: Leaf, opts: { minutes?: number; status?: 'good' | 'revoked' } = {}): Promise<string> => {
    const serialHex = (await openssl(['x509', '-in', l.cert, '-noout', '-serial'], dir)).trim().replace(/^serial=/, '');
    const subject = (await openssl(['x509', '-in', l.cert, '-noout', '-subject', '-nameopt', 'compat'], dir)).trim().replace(/^subject=/, '');
    const base = path.join(dir, `${l.name}-ocsp-${Date.now()}-${Math.random().toString(16).slice(2)}`);
    // index.txt of `openssl ca`: status, expiry (YYMMDDHHMMSSZ), revocation date, serial, file, subject
    const revoked = opts.status === 'revoked';
    const line = [revoked ? 'R' : 'V', '301231235959Z', revoked ? '240101000000Z' : '', serialHex, 'unknown', subject].join('\t');
    await writeFile(`${base}.index`, line + '\n');
    await openssl(['ocsp', '-issuer', l.ca.cert, '-cert', l.cert, '-no_nonce', '-reqout', `${base}.req`], dir);
    await openssl(
      ['ocsp', '-index', `${base}.index`, '-rsigner', l.ca.cert, '-rkey', l.ca.key, '-CA', l.ca.cert, '-reqin', `${base}.req`,
        '-respout', `${base}.der`, '-nmin', String(opts.minutes ?? 60)],
      dir,
    );
    return `${base}.der`;
  };

  return { dir, ca, leaf, ocsp, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
