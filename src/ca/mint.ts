import { createHash } from 'node:crypto';
import type { IssuingAuthority } from './authority.js';
import { exportPkcs8, generateKeyPair, type AnyKeyType } from './keys.js';
import { buildPkcs12, type Pkcs12Profile } from './pkcs12.js';
import { generatePkcs12Password } from './pkcs12-password.js';
import { friendlyName } from './friendly-name.js';
import { subjectFromDer } from './subject.js';
import { pemEncode } from './pem.js';

/**
 * Where end-entity key pairs come from. The default generates a fresh pair per certificate; the
 * portal can plug in a small in-memory pool so RSA-2048 users do not wait for key generation.
 */
export interface KeySource {
  take(type: AnyKeyType): Promise<CryptoKeyPair>;
}
export const freshKeys: KeySource = { take: (type) => generateKeyPair(type) };

/** Everything needed to mint one certificate. Plain data, so it can be posted to a worker thread. */
export interface MintRequest {
  /** DER of the subject Name (see ca/subject.ts); a renewal passes its predecessor's bytes. */
  subjectDer: Uint8Array;
  /** Shown in certificate lists; see friendly-name.ts. */
  displayName: string;
  keyType: AnyKeyType;
  profile: Pkcs12Profile;
  notBefore: Date;
  notAfter: Date;
  /** The same key and certificate also packed in these profiles, with the same password. */
  alternativeProfiles?: Pkcs12Profile[];
}

/** The result, also plain data: what the database records and what the user receives. */
export interface Minted {
  serial: string;
  subject: string;
  subjectDer: Uint8Array;
  certificateDer: Uint8Array;
  certificatePem: string;
  notBefore: Date;
  notAfter: Date;
  fingerprintSha256: string;
  pkcs12: Uint8Array;
  /** Further packings of the same key, see MintRequest.alternativeProfiles. */
  alternatives: { profile: Pkcs12Profile; pkcs12: Uint8Array }[];
  password: string;
  friendlyName: string;
}

/** Mints certificates: in this thread, or in a pool of worker threads (mint-pool.ts). */
export interface Minter {
  mint(req: MintRequest): Promise<Minted>;
  close(): Promise<void>;
  /** False once it cannot mint any more (every worker of a pool gone); /readyz reports it. */
  healthy?(): boolean;
}

/**
 * Key + certificate + PKCS#12, with no database and no files: the CPU part of issuance.
 * The private key exists only in memory and inside the password-protected PKCS#12.
 */
export async function mintClientCertificate(authority: IssuingAuthority, keys: KeySource, req: MintRequest): Promise<Minted> {
  const pair = await keys.take(req.keyType);
  const signed = authority.signClient({
    subjectDer: req.subjectDer,
    publicKey: pair.publicKey,
    keyType: req.keyType,
    notBefore: req.notBefore,
    notAfter: req.notAfter,
  });
  const der = signed.der;
  const password = generatePkcs12Password();
  const name = friendlyName(req.displayName, req.notAfter);
  const privateKeyPkcs8 = await exportPkcs8(pair.privateKey);
  const pack = (profile: Pkcs12Profile) =>
    buildPkcs12({
      privateKeyPkcs8,
      certificate: der,
      // The issuing CA only, never the root: Windows would offer to install a root from the file as trusted.
      chain: [new Uint8Array(authority.issuing.rawData)],
      friendlyName: name,
      password,
      profile,
      pairGeneratedTogether: true,
    });
  const pkcs12 = await pack(req.profile);
  const alternatives = [];
  for (const profile of req.alternativeProfiles ?? []) if (profile !== req.profile) alternatives.push({ profile, pkcs12: await pack(profile) });
  privateKeyPkcs8.fill(0); // the only plaintext copy of the key this code made
  return {
    serial: signed.serial,
    subject: subjectFromDer(req.subjectDer).toString(),
    subjectDer: req.subjectDer,
    certificateDer: der,
    certificatePem: pemEncode(der, 'CERTIFICATE'),
    notBefore: signed.notBefore,
    notAfter: signed.notAfter,
    fingerprintSha256: createHash('sha256').update(der).digest('hex'),
    pkcs12,
    alternatives,
    password,
    friendlyName: name,
  };
}

export function inProcessMinter(authority: IssuingAuthority, keys: KeySource = freshKeys): Minter {
  return { mint: (req) => mintClientCertificate(authority, keys, req), close: async () => {} };
}
