// Loading the configured certificates and deciding which of them serve which server name.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { CertificateConfig } from '../config/types.js';
import { TlsConfigError } from './errors.js';
import { normaliseSerial } from './ocsp.js';

export interface LoadedCertificate {
  /** Position in `tls.certificates`; 0 is the default. */
  index: number;
  config: CertificateConfig;
  certPem: string;
  keyPem: string;
  leaf: X509Certificate;
  /** `rsa`, `ec`, `ed25519`, ...: one of each type can share a context, OpenSSL picks by the client's signature algorithms. */
  keyType: string;
  /**
   * Names SNI selects it by: `tls.certificates[].names` when given (a tenant's names, issue
   * #24), else the lower-case DNS names of its subjectAltName (`*.example.org` kept as written).
   */
  names: string[];
  serial: string;
}

const DNS_NAME = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

/** DNS names of a subjectAltName string as Node prints it (`DNS:a.example, IP Address:192.0.2.1`). */
export function dnsNames(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  const out: string[] = [];
  for (const part of subjectAltName.split(', ')) {
    if (!part.startsWith('DNS:')) continue;
    const name = part.slice(4).toLowerCase();
    // Quoted or odd entries cannot be host names; skipping them beats matching them loosely.
    if (DNS_NAME.test(name) && !out.includes(name)) out.push(name);
  }
  return out;
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new TlsConfigError('TLS_CERTIFICATE', `cannot read ${what} ${file}: ${(err as Error).message}`, file, { cause: err });
  }
}

/**
 * A pair found mismatched is read again this often, this far apart, before it is refused: updaters
 * (certbot, acme.sh, Postern's own ACME store) replace the two files one after the other, and a
 * process starting or reloading between the two renames must not fail on the window.
 */
const MISMATCH_RETRIES = 5;
const MISMATCH_WAIT_MS = 200;

export async function loadCertificate(config: CertificateConfig, index: number): Promise<LoadedCertificate> {
  for (let attempt = 0; ; attempt++) {
    const [certPem, keyPem] = await Promise.all([readPem(config.cert, 'certificate'), readPem(config.key, 'key')]);
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(certPem);
    } catch (err) {
      throw new TlsConfigError('TLS_CERTIFICATE', `${config.cert} is not a PEM certificate: ${(err as Error).message}`, config.cert, { cause: err });
    }
    let keyType: string;
    let matches: boolean;
    try {
      const key = createPrivateKey(keyPem);
      keyType = key.asymmetricKeyType ?? 'unknown';
      matches = leaf.checkPrivateKey(key);
    } catch (err) {
      throw new TlsConfigError('TLS_CERTIFICATE', `${config.key} is not the unencrypted key of ${config.cert}: ${(err as Error).message}`, config.key, {
        cause: err,
      });
    }
    if (matches) {
      return { index, config, certPem, keyPem, leaf, keyType, names: config.names ?? dnsNames(leaf.subjectAltName), serial: normaliseSerial(leaf.serialNumber) };
    }
    if (attempt >= MISMATCH_RETRIES) {
      throw new TlsConfigError('TLS_CERTIFICATE', `${config.key} is not the unencrypted key of ${config.cert}: the key does not belong to the certificate`, config.key);
    }
    await new Promise((resolve) => setTimeout(resolve, MISMATCH_WAIT_MS));
  }
}

export function loadCertificates(configs: CertificateConfig[]): Promise<LoadedCertificate[]> {
  if (configs.length === 0) return Promise.reject(new TlsConfigError('TLS_CERTIFICATE', 'tls.certificates is empty'));
  return Promise.all(configs.map((c, i) => loadCertificate(c, i)));
}

/** Certificates served together from one SecureContext: at most one per key type, in config order. */
export interface CertGroup {
  /** Indices into the certificate list, e.g. `[0, 2]`; also the group's identity. */
  members: number[];
}

export interface SniPlan {
  default: CertGroup;
  groups: CertGroup[];
  /** Exact and wildcard (`*.example.org`) names to groups. */
  byName: Map<string, CertGroup>;
}

type Named = Pick<LoadedCertificate, 'names' | 'keyType'>;

/**
 * Each name is served by the first certificate of each key type that lists it, so an RSA and an
 * ECDSA certificate for the same name share a context. The default (no or unknown SNI) is the
 * first certificate plus, per other key type, the first certificate sharing a name with it.
 */
export function planSni(certs: readonly Named[]): SniPlan {
  const groups = new Map<string, CertGroup>();
  const intern = (members: number[]): CertGroup => {
    const sorted = [...members].sort((a, b) => a - b);
    const id = sorted.join(',');
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { members: sorted }));
    return g;
  };
  const firstPerType = (pred: (c: Named, i: number) => boolean, seed: number[] = []): number[] => {
    const chosen = [...seed];
    const types = new Set(seed.map((i) => certs[i]!.keyType));
    certs.forEach((c, i) => {
      if (!types.has(c.keyType) && pred(c, i)) {
        types.add(c.keyType);
        chosen.push(i);
      }
    });
    return chosen;
  };

  const first = certs[0];
  if (!first) throw new TlsConfigError('TLS_CERTIFICATE', 'tls.certificates is empty');
  const dflt = intern(firstPerType((c) => c.names.some((n) => first.names.includes(n)), [0]));
  const byName = new Map<string, CertGroup>();
  for (const c of certs) {
    for (const name of c.names) {
      if (!byName.has(name)) byName.set(name, intern(firstPerType((o) => o.names.includes(name))));
    }
  }
  return { default: dflt, groups: [...groups.values()], byName };
}

/** The group for a client's SNI: exact name, then a wildcard for exactly one more label, else the default. */
export function lookupSni(plan: SniPlan, servername: string | null): CertGroup {
  if (!servername) return plan.default;
  const name = servername.toLowerCase().replace(/\.$/, '');
  const exact = plan.byName.get(name);
  if (exact) return exact;
  const dot = name.indexOf('.');
  if (dot > 0) {
    const wild = plan.byName.get(`*${name.slice(dot)}`);
    if (wild) return wild;
  }
  return plan.default;
}
