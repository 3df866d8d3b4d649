import { createHash } from 'node:crypto';
import type { IssuingAuthority } from './authority.js';
import { exportPkcs8, generateKeyPair, type AnyKeyType } from './keys.js';
import { buildPkcs12, type Pkcs12Profile } from './pkcs12.js';
import { generatePkcs12Password } from './pkcs12-password.js';
import { friendlyName } from './friendly-name.js';
import type { x509 } from './x509.js';

/**
 * Where end-entity key pairs come from. The default generates a fresh pair per certificate; the
 * portal can plug in a small in-memory pool so RSA-2048 users do not wait for key generation.
 */
export interface KeySource {
  take(type: AnyKeyType): Promise<CryptoKeyPair>;
}
export const freshKeys: KeySource = { take: (type) => generateKeyPair(type) };

export interface MintRequest {
  subject: x509.Name;
  /** Shown in certificate lists; see friendly-name.ts. */
  displayName: string;
  keyType: AnyKeyType;
  profile: Pkcs12Profile;
  notBefore: Date;
  notAfter: Date;
}

export interface Minted {
  certificate: x509.X509Certificate;
  serial: string;
  fingerprintSha256: string;
  pkcs12: Uint8Array;
  password: string;
  friendlyName: string;
}

/**
 * Key + certificate + PKCS#12, with no database and no files: the CPU part of issuance.
 * The private key exists only in memory and inside the password-protected PKCS#12.
 */
export async function mintClientCertificate(authority: IssuingAuthority, keys: KeySource, req: MintRequest): Promise<Minted> {
  const pair = await keys.take(req.keyType);
  const certificate = await authority.signClient({
    subject: req.subject,
    publicKey: pair.publicKey,
    keyType: req.keyType,
    notBefore: req.notBefore,
    notAfter: req.notAfter,
  });
  const der = new Uint8Array(certificate.rawData);
  const password = generatePkcs12Password();
  const name = friendlyName(req.displayName, req.notAfter);
  const pkcs12 = await buildPkcs12({
    privateKeyPkcs8: await exportPkcs8(pair.privateKey),
    certificate: der,
    // The issuing CA only, never the root: Windows would offer to install a root from the file as trusted.
    chain: [new Uint8Array(authority.issuing.rawData)],
    friendlyName: name,
    password,
    profile: req.profile,
  });
  return {
    certificate,
    serial: certificate.serialNumber.replace(/^0+/, ''),
    fingerprintSha256: createHash('sha256').update(der).digest('hex'),
    pkcs12,
    password,
    friendlyName: name,
  };
}
