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

/**
 * The two-tier hierarchy (as step-ca does it): an offline-able root that signs only the issuing
 * CA, and the issuing CA that signs client and server certificates. Created once by `kenshin
 * init`; a second init is refused, because a new root would orphan every certificate in the field.
 */

const ROOT_YEARS = 20;
/** Longer than client validity (3y) several times over; rotation under the same root is a later step. */
const ISSUING_YEARS = 10;

export function isInitialised(paths: DataPaths): boolean {
  return fs.existsSync(paths.rootCert);
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
  const issuing = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: new x509.Name([
      { '2.5.4.3': [{ utf8String: `${opts.commonNamePrefix} Issuing CA 1` }] },
      { '2.5.4.10': [{ utf8String: opts.commonNamePrefix }] },
    ]),
    issuer: root.subjectName,
    notBefore,
    notAfter: addYears(notBefore, ISSUING_YEARS),
    publicKey: issuingKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: alg,
    extensions: await issuingCaExtensions(issuingKeys.publicKey, root),
  });

  const tmp = fs.mkdtempSync(path.join(paths.dataDir, '.ca-init-'));
  try {
    fs.writeFileSync(path.join(tmp, path.basename(paths.rootCert)), root.toString('pem') + '\n');
    fs.writeFileSync(path.join(tmp, path.basename(paths.issuingCert)), issuing.toString('pem') + '\n');
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

function readCert(file: string): x509.X509Certificate {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch {
    throw new Refusal('not_initialized', `no CA at ${file}: run \`kenshin init\` first`, { field: file });
  }
  return new x509.X509Certificate(pem);
}

/** The issuing CA as bytes, decrypted in memory: what the in-process authority and mint workers are built from. */
export async function loadAuthorityMaterial(paths: DataPaths, passphraseFromEnv: string | undefined, crlUrl: string | undefined): Promise<AuthorityMaterial> {
  const root = readCert(paths.rootCert);
  const issuing = readCert(paths.issuingCert);
  const passphrase = readPassphrase(passphraseFromEnv, paths.caPassphraseFile);
  const pkcs8 = decryptPkcs8Pem(fs.readFileSync(paths.issuingKey, 'utf8'), passphrase, paths.issuingKey);
  // Learn the key type from the issuing certificate itself: a config change must not break loading.
  const pub = await issuing.publicKey.export();
  const keyType = keyTypeOfAlgorithm(pub.algorithm);
  await assertKeyMatches(await importPkcs8(pkcs8, keyType, false), pub, keyType, paths.issuingKey);
  return { rootDer: new Uint8Array(root.rawData), issuingDer: new Uint8Array(issuing.rawData), issuingKeyPkcs8: pkcs8, keyType, crlUrl };
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
    throw new Refusal('ca_key_unreadable', `${file} does not belong to the issuing CA certificate`, { field: file });
  }
}
