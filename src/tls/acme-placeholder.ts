// The self-signed stand-in served for the ACME domains until the CA has issued a certificate
// (acme-store.ts). Node's crypto cannot make certificates; @peculiar/x509 (which acme-client
// itself builds on) can.
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

let providerSet = false;

/** A self-signed ECDSA P-256 certificate for `domains`, valid for a year (never trusted by anyone: a stand-in). */
/** `org`: the organisation the store recognises a placeholder by (acme-store.ts). */
export async function selfSigned(domains: string[], org: string): Promise<{ certPem: string; keyPem: string }> {
  if (!providerSet) {
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    providerSet = true;
  }
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: `CN=${domains[0]}, O=${org}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 365 * 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.SubjectAlternativeNameExtension(domains.map((d) => ({ type: 'dns' as const, value: d })))],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  return { certPem: cert.toString('pem') + '\n', keyPem };
}
