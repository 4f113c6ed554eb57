// Self-signed test certificates (ECDSA P-256 and RSA-2048), made with openssl in the scratch dir.

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCommand } from './procs.js';

export interface CertFiles {
  cert: string;
  key: string;
  /** cert + key in one file (HAProxy's `crt`). */
  pem: string;
}

export interface Certs {
  ecdsa: CertFiles;
  rsa: CertFiles;
}

export type CertKind = keyof Certs;

async function make(openssl: string, dir: string, name: string, keyArgs: string[]): Promise<CertFiles> {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const pem = path.join(dir, `${name}.pem`);
  const r = await runCommand(
    openssl,
    ['req', '-x509', ...keyArgs, '-nodes', '-keyout', key, '-out', cert, '-days', '30',
      '-subj', '/CN=bench.localhost', '-addext', 'subjectAltName=DNS:bench.localhost,IP:127.0.0.1'],
    30_000,
  );
  if (r.code !== 0) throw new Error(`openssl req (${name}) failed: ${r.stderr.trim()}`);
  writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'), { mode: 0o600 });
  return { cert, key, pem };
}

export async function makeCerts(openssl: string, dir: string): Promise<Certs> {
  const [ecdsa, rsa] = await Promise.all([
    make(openssl, dir, 'ecdsa-p256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']),
    make(openssl, dir, 'rsa-2048', ['-newkey', 'rsa:2048']),
  ]);
  return { ecdsa, rsa };
}
