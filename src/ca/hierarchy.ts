import fs from 'node:fs';
import path from 'node:path';
import { x509 } from './x509.js';
import { IssuingAuthority } from './authority.js';
import { exportPkcs8, generateKeyPair, importPkcs8, keyAlgorithm, keyTypeOfAlgorithm, type AnyKeyType } from './keys.js';
import { issuingCaExtensions, rootCaExtensions } from './profiles.js';
import { randomSerial } from './serial.js';
import { decryptPkcs8Pem, encryptPkcs8Pem, generatePassphrase, readPassphrase, writeSecretFile } from './keystore.js';
import { addYears } from '../clock.js';
import { Refusal } from '../errors.js';
import type { CaKeyType, DataPaths } from '../config.js';
import { subtle } from './x509.js';
import type { AuthorityMaterial } from './mint-pool.js';
import { RootAuthority } from './root-authority.js';
import { crlUrlForGeneration, currentIssuingFiles, fingerprintOfCertificate, listIssuingFiles, readCertificate as readCert, type IssuingCaFiles } from './generations.js';
import { listExternalCas, type ExternalCa, type ExternalMode } from './external.js';

/**
 * The two-tier hierarchy (as step-ca does it): an offline-able root that signs only issuing CAs
 * (and its CRL), and the issuing CA that signs client and server certificates. Created once by
 * `kenshin init`; a second init is refused, because a new root would orphan every certificate in
 * the field. The issuing CA can be replaced under the same root (rotate.ts, generations.ts).
 */

const ROOT_YEARS = 20;
/** Longer than client validity (3y) several times over; `kenshin ca rotate` makes the next one under the same root. */
const ISSUING_YEARS = 10;

export function isInitialised(paths: DataPaths): boolean {
  return fs.existsSync(paths.rootCert);
}

export function requireInitialised(paths: DataPaths): void {
  if (!isInitialised(paths)) throw new Refusal('not_initialized', `no CA in ${paths.dataDir}: run \`kenshin init\` first`, { field: 'data-dir' });
}

export interface CreateHierarchyOptions {
  paths: DataPaths;
  keyType: CaKeyType;
  commonNamePrefix: string;
  passphraseFromEnv: string | undefined;
  now: Date;
}

/**
 * Writes root + issuing CA into a temporary directory and renames it into place, so an
 * interrupted init leaves either no CA or a complete one, never half of one.
 */
export async function createHierarchy(opts: CreateHierarchyOptions): Promise<void> {
  const { paths } = opts;
  if (isInitialised(paths)) {
    throw new Refusal('already_initialized', `${paths.dataDir} already holds a CA (${paths.rootCert}); refusing to overwrite it`, {
      field: paths.rootCert,
    });
  }
  const passphrase = opts.passphraseFromEnv ?? generatePassphrase();
  const alg = keyAlgorithm(opts.keyType);
  const notBefore = new Date(opts.now.getTime() - 5 * 60_000);

  const rootKeys = await generateKeyPair(opts.keyType);
  const rootName = new x509.Name([
    { '2.5.4.3': [{ utf8String: `${opts.commonNamePrefix} Root CA` }] },
    { '2.5.4.10': [{ utf8String: opts.commonNamePrefix }] },
  ]);
  const root = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: rootName,
    issuer: rootName,
    notBefore,
    notAfter: addYears(notBefore, ROOT_YEARS),
    publicKey: rootKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: alg,
    extensions: await rootCaExtensions(rootKeys.publicKey),
  });

  const issuingKeys = await generateKeyPair(opts.keyType);
  const issuing = await signIssuingCa({ root, rootKey: rootKeys.privateKey, rootKeyType: opts.keyType, publicKey: issuingKeys.publicKey, commonNamePrefix: opts.commonNamePrefix, generation: 1, notBefore });

  const tmp = fs.mkdtempSync(path.join(paths.dataDir, '.ca-init-'));
  try {
    // Certificates are public, but 0600 like everything in the data directory (one rule to check).
    fs.writeFileSync(path.join(tmp, path.basename(paths.rootCert)), root.toString('pem') + '\n', { mode: 0o600 });
    fs.writeFileSync(path.join(tmp, path.basename(paths.issuingCert)), issuing.toString('pem') + '\n', { mode: 0o600 });
    writeSecretFile(path.join(tmp, path.basename(paths.rootKey)), encryptPkcs8Pem(await exportPkcs8(rootKeys.privateKey), passphrase));
    writeSecretFile(path.join(tmp, path.basename(paths.issuingKey)), encryptPkcs8Pem(await exportPkcs8(issuingKeys.privateKey), passphrase));
    if (!opts.passphraseFromEnv) {
      fs.mkdirSync(paths.secretsDir, { recursive: true, mode: 0o700 });
      if (!fs.existsSync(paths.caPassphraseFile)) writeSecretFile(paths.caPassphraseFile, passphrase + '\n');
    }
    fs.renameSync(tmp, paths.caDir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Signs an issuing CA certificate: "<prefix> Issuing CA <generation>" (the generation is read back
 * from this name, see generations.ts), pathLen 0, valid ISSUING_YEARS but never past the root.
 */
export async function signIssuingCa(opts: {
  root: x509.X509Certificate;
  rootKey: CryptoKey;
  rootKeyType: AnyKeyType;
  publicKey: CryptoKey;
  commonNamePrefix: string;
  generation: number;
  notBefore: Date;
}): Promise<x509.X509Certificate> {
  const notAfter = addYears(opts.notBefore, ISSUING_YEARS);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: new x509.Name([
      { '2.5.4.3': [{ utf8String: `${opts.commonNamePrefix} Issuing CA ${opts.generation}` }] },
      { '2.5.4.10': [{ utf8String: opts.commonNamePrefix }] },
    ]),
    issuer: opts.root.subjectName,
    notBefore: opts.notBefore,
    notAfter: notAfter.getTime() > opts.root.notAfter.getTime() ? opts.root.notAfter : notAfter,
    publicKey: opts.publicKey,
    signingKey: opts.rootKey,
    signingAlgorithm: keyAlgorithm(opts.rootKeyType),
    extensions: await issuingCaExtensions(opts.publicKey, opts.root),
  });
}

/**
 * The CURRENT issuing CA as bytes, decrypted in memory: what the in-process authority and mint
 * workers are built from. Its CRL distribution point is its own generation's (generations.ts).
 */
export async function loadAuthorityMaterial(paths: DataPaths, passphraseFromEnv: string | undefined, crlUrl: string | undefined): Promise<AuthorityMaterial> {
  return loadGenerationMaterial(paths, currentIssuingFiles(paths), readPassphrase(passphraseFromEnv, paths.caPassphraseFile), crlUrl);
}

async function loadGenerationMaterial(paths: DataPaths, ca: IssuingCaFiles, passphrase: string, crlUrl: string | undefined): Promise<AuthorityMaterial> {
  const root = readCert(paths.rootCert);
  const pkcs8 = decryptPkcs8Pem(readKeyFile(ca.keyFile), passphrase, ca.keyFile);
  // Learn the key type from the issuing certificate itself: a config change must not break loading.
  const pub = await ca.certificate.publicKey.export();
  const keyType = keyTypeOfAlgorithm(pub.algorithm);
  await assertKeyMatches(await importPkcs8(pkcs8, keyType, false), pub, keyType, ca.keyFile);
  return {
    rootDer: new Uint8Array(root.rawData),
    issuingDer: new Uint8Array(ca.certificate.rawData),
    issuingKeyPkcs8: pkcs8,
    keyType,
    crlUrl: crlUrlForGeneration(crlUrl, ca.generation),
  };
}

function readKeyFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    throw new Refusal('ca_key_unreadable', `cannot read ${file}: the key of this CA is missing`, { field: file });
  }
}

/** The root with its key, decrypted: it signs new issuing CAs (rotation) and the root CRL. */
export async function loadRootKey(paths: DataPaths, passphrase: string): Promise<{ certificate: x509.X509Certificate; key: CryptoKey; keyType: AnyKeyType }> {
  const certificate = readCert(paths.rootCert);
  const pkcs8 = decryptPkcs8Pem(readKeyFile(paths.rootKey), passphrase, paths.rootKey);
  const pub = await certificate.publicKey.export();
  const keyType = keyTypeOfAlgorithm(pub.algorithm);
  const key = await importPkcs8(pkcs8, keyType, false);
  pkcs8.fill(0);
  await assertKeyMatches(key, pub, keyType, paths.rootKey);
  return { certificate, key, keyType };
}

/**
 * The client CAs to trust, PEM, one per element: the root and every issuing CA, current and
 * retired, so that certificates of an earlier generation keep chaining until they expire. What
 * the HTTPS listener requests client certificates with, and `kenshin ca bundle` writes for a proxy.
 */
export function loadTrustedCaPems(paths: DataPaths): string[] {
  const certs = [readCert(paths.rootCert), ...listIssuingFiles(paths).map((g) => g.certificate)];
  // The CAs of a service taken over (external.ts) and the chains above them: their certificates
  // are in the field and must keep working until they are renewed into Kenshin's CA.
  for (const ext of listExternalCas(paths)) certs.push(ext.certificate, ...ext.chain);
  const seen = new Set<string>();
  return certs
    .filter((c) => {
      const fp = fingerprintOfCertificate(c);
      return seen.has(fp) ? false : (seen.add(fp), true);
    })
    .map((c) => c.toString('pem') + '\n');
}

/** Every CA certificate a client certificate may be signed by: Kenshin's issuing generations and the external CAs. */
export function clientIssuers(cas: CaSet): x509.X509Certificate[] {
  return [...cas.generations.map((g) => g.authority.issuing), ...cas.external.map((e) => e.certificate)];
}

/** One generation of the issuing CA, with its key loaded. */
export interface IssuingGeneration {
  generation: number;
  current: boolean;
  authority: IssuingAuthority;
}

/** Every CA that publishes a CRL: the root and every issuing generation (oldest first), keys loaded. */
export interface CaSet {
  /**
   * Undefined when root.key is not on this machine (an operator who keeps the root offline): then
   * no root CRL is signed here, and everything else works as before.
   */
  root: RootAuthority | undefined;
  generations: IssuingGeneration[];
  /** External CAs (external.ts); `authority` only for an adopted one (its key is here, it signs its CRL). */
  external: { id: string; mode: ExternalMode; certificate: x509.X509Certificate; authority: IssuingAuthority | undefined }[];
}

export async function loadCaSet(paths: DataPaths, passphraseFromEnv: string | undefined, crlUrl: string | undefined): Promise<CaSet> {
  const passphrase = readPassphrase(passphraseFromEnv, paths.caPassphraseFile);
  const root = fs.existsSync(paths.rootKey) ? await loadRootKey(paths, passphrase) : undefined;
  const generations: IssuingGeneration[] = [];
  for (const g of listIssuingFiles(paths)) {
    generations.push({ generation: g.generation, current: g.current, authority: await authorityFromMaterial(await loadGenerationMaterial(paths, g, passphrase, crlUrl)) });
  }
  const external: CaSet['external'] = [];
  for (const ext of listExternalCas(paths)) {
    external.push({ id: ext.id, mode: ext.mode, certificate: ext.certificate, authority: ext.keyFile ? await loadExternalAuthority(ext, passphrase) : undefined });
  }
  return { root: root && new RootAuthority(root.certificate, root.key, root.keyType), generations, external };
}

/** An adopted CA with its key: signs its CRL (and, should the operator choose it, certificates). */
async function loadExternalAuthority(ext: ExternalCa, passphrase: string): Promise<IssuingAuthority> {
  const pkcs8 = decryptPkcs8Pem(readKeyFile(ext.keyFile!), passphrase, ext.keyFile!);
  const pub = await ext.certificate.publicKey.export();
  const keyType = keyTypeOfAlgorithm(pub.algorithm);
  const key = await importPkcs8(pkcs8, keyType, false);
  pkcs8.fill(0);
  await assertKeyMatches(key, pub, keyType, ext.keyFile!);
  return new IssuingAuthority(ext.chain.at(-1) ?? ext.certificate, ext.certificate, key, keyType, undefined);
}

export async function authorityFromMaterial(m: AuthorityMaterial): Promise<IssuingAuthority> {
  const keyType = m.keyType as AnyKeyType;
  return new IssuingAuthority(
    new x509.X509Certificate(m.rootDer as Uint8Array<ArrayBuffer>),
    new x509.X509Certificate(m.issuingDer as Uint8Array<ArrayBuffer>),
    await importPkcs8(m.issuingKeyPkcs8, keyType, false),
    keyType,
    m.crlUrl,
  );
}

export async function loadIssuingAuthority(paths: DataPaths, passphraseFromEnv: string | undefined, crlUrl: string | undefined): Promise<IssuingAuthority> {
  return authorityFromMaterial(await loadAuthorityMaterial(paths, passphraseFromEnv, crlUrl));
}

/** A key file swapped for another CA's would sign certificates nobody can verify: check by signing. */
async function assertKeyMatches(priv: CryptoKey, pub: CryptoKey, type: AnyKeyType, file: string): Promise<void> {
  const alg = keyAlgorithm(type);
  const data = new Uint8Array([1, 2, 3]);
  const sig = await subtle.sign(alg, priv, data);
  if (!(await subtle.verify(alg, pub, sig, data))) {
    throw new Refusal('ca_key_unreadable', `${file} does not belong to the CA certificate it is stored with`, { field: file });
  }
}
