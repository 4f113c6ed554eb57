// The ACME store directory (`tls.acme.store`): what one host keeps of its ACME state.
//   account.key              the ACME account's key (made once, mode 0600)
//   <first domain>/cert.pem  the certificate chain in use, replaced by rename (the file watch loads it)
//   <first domain>/key.pem   its key (mode 0600)
//   <first domain>/order.lock  held by the process ordering, without Redis (cluster workers share it)
//   challenges/              tls-alpn-01 and http-01 answers, for every process of the host
// Until the first certificate is issued, a self-signed stand-in for the domains serves, so that the
// TLS listeners (which also answer tls-alpn-01) can start.
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { AcmeConfig, CertificateConfig } from '../config/types.js';

/** In the stand-in's subject, so it is never mistaken for an issued certificate. */
export const PLACEHOLDER_ORG = 'Postern ACME placeholder';

export class AcmeStore {
  readonly dir: string;
  readonly domains: string[];
  constructor(cfg: Pick<AcmeConfig, 'store' | 'domains'>) {
    this.dir = path.resolve(cfg.store);
    this.domains = cfg.domains;
  }

  get certDir(): string {
    return path.join(this.dir, this.domains[0]!);
  }

  /** The pair as `tls.certificates` would list it. */
  get pair(): CertificateConfig {
    return { cert: path.join(this.certDir, 'cert.pem'), key: path.join(this.certDir, 'key.pem') };
  }

  get challengeDir(): string {
    return path.join(this.dir, 'challenges');
  }

  get lockFile(): string {
    return path.join(this.certDir, 'order.lock');
  }

  /** Makes the directories and, when no certificate is there yet, the self-signed stand-in. */
  async prepare(): Promise<void> {
    await mkdir(this.certDir, { recursive: true, mode: 0o700 });
    await mkdir(this.challengeDir, { recursive: true, mode: 0o700 });
    const have = await stat(this.pair.cert).then(
      () => true,
      () => false,
    );
    if (!have) {
      // Loaded only when needed: the X.509 builder costs start-up time every other process would pay.
      const { selfSigned } = await import('./acme-placeholder.js');
      const { certPem, keyPem } = await selfSigned(this.domains, PLACEHOLDER_ORG);
      await this.writePair(certPem, keyPem);
    }
  }

  /** The certificate in the store, or null (unreadable or unparseable). */
  async current(): Promise<{ certPem: string; keyPem: string; leaf: X509Certificate } | null> {
    try {
      const [certPem, keyPem] = await Promise.all([readFile(this.pair.cert, 'utf8'), readFile(this.pair.key, 'utf8')]);
      return { certPem, keyPem, leaf: new X509Certificate(certPem) };
    } catch {
      return null;
    }
  }

  /**
   * Replaces the pair, each file by rename so no reader sees half a file: the key first, then the
   * certificate. A reader between the two renames finds a mismatched pair and reads it again
   * (tls/certificates.ts loadCertificate), so a worker starting meanwhile does not fail.
   */
  async writePair(certPem: string, keyPem: string): Promise<void> {
    // Refuse a pair that does not belong together before it replaces a working one.
    if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the new key does not belong to the new certificate');
    await atomicWrite(this.pair.key, keyPem, 0o600);
    await atomicWrite(this.pair.cert, certPem, 0o644);
  }

  async accountKey(make: () => Promise<Buffer>): Promise<Buffer> {
    const file = path.join(this.dir, 'account.key');
    try {
      return await readFile(file);
    } catch {
      const key = await make();
      await atomicWrite(file, key, 0o600);
      return key;
    }
  }

  /**
   * The host's order lock (a file created exclusively), for processes that share this store without
   * Redis. A lock older than `ttlMs` is a crashed holder's and is taken over.
   */
  async tryLock(owner: string, ttlMs: number): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await open(this.lockFile, 'wx', 0o600);
        await fh.writeFile(JSON.stringify({ owner, at: Date.now() }));
        await fh.close();
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const held = await readFile(this.lockFile, 'utf8').then(
          (t) => JSON.parse(t) as { owner?: string; at?: number },
          () => ({ at: 0 }),
        );
        if (Date.now() - (held.at ?? 0) < ttlMs) return false;
        await rm(this.lockFile, { force: true });
      }
    }
    return false;
  }

  async unlock(owner: string): Promise<void> {
    const held = await readFile(this.lockFile, 'utf8').then(
      (t) => JSON.parse(t) as { owner?: string },
      () => null,
    );
    if (held?.owner === owner) await rm(this.lockFile, { force: true });
  }
}

/** Whether a certificate is the stand-in rather than one the CA issued. */
export function isPlaceholder(leaf: X509Certificate): boolean {
  return leaf.subject.includes(`O=${PLACEHOLDER_ORG}`);
}

export async function atomicWrite(file: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, file);
}
