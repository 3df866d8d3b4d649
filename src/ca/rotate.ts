import fs from 'node:fs';
import path from 'node:path';
import { x509 } from './x509.js';
import { exportPkcs8, generateKeyPair, keyTypeOfAlgorithm, type AnyKeyType } from './keys.js';
import { encryptPkcs8Pem, readPassphrase, writeSecretFile } from './keystore.js';
import { requireInitialised, loadRootKey, signIssuingCa } from './hierarchy.js';
import {
  crlName,
  currentIssuingFiles,
  finishPendingRotation,
  fingerprintOfCertificate,
  listIssuingFiles,
  pendingDir,
  retiredDir,
  retiredFiles,
  type IssuingCaFiles,
} from './generations.js';
import { writeFileAtomic } from '../atomic-file.js';
import { Refusal } from '../errors.js';
import type { DataPaths } from '../config.js';

/**
 * `kenshin ca rotate`, the file half: a new issuing CA under the same root. No database here; the
 * caller commits inside its audit transaction (setup/rotate-ca.ts), so the rotation and its
 * `ca.rotated` event happen together. The layout and the crash argument are in generations.ts.
 */

export interface CaSummary {
  generation: number;
  fingerprint: string;
  subject: string;
  notAfter: string;
  /** Path of its CRL under /crl/, without extension ("issuing", "issuing-2"). */
  crl: string;
}

export interface PreparedRotation {
  previous: CaSummary;
  next: CaSummary & { keyType: AnyKeyType; certificatePem: string };
  /** A crashed earlier rotation was completed first. */
  finishedInterrupted: boolean;
  /**
   * The commit point, to run inside the caller's transaction (after its audit append, which
   * serialises rotations): refuses if the current CA changed since prepare (a concurrent rotate),
   * then renames the staged CA to ca/next, which makes it the current one.
   */
  commit(): void;
  /** After the caller's transaction committed: copies ca/next over ca/issuing.*. */
  finish(): void;
  /** The caller's transaction failed: remove the staged CA, or take back a commit. */
  abort(): void;
}

function summary(ca: { generation: number; certificate: x509.X509Certificate; fingerprint: string }): CaSummary {
  return { generation: ca.generation, fingerprint: ca.fingerprint, subject: ca.certificate.subject, notAfter: ca.certificate.notAfter.toISOString(), crl: crlName(ca.generation) };
}

/** The naming prefix of this installation, from the root's O (init sets CN "<prefix> Root CA", O "<prefix>"). */
function prefixOf(root: x509.X509Certificate): string {
  return root.subjectName.getField('2.5.4.10')[0] ?? (root.subjectName.getField('2.5.4.3')[0] ?? 'Kenshin Cloud').replace(/ Root CA$/, '');
}

export async function prepareRotation(opts: { paths: DataPaths; passphraseFromEnv: string | undefined; keyType?: AnyKeyType | undefined; now: Date }): Promise<PreparedRotation> {
  const { paths } = opts;
  requireInitialised(paths);
  // Everything that can be refused is checked before the first write.
  const passphrase = readPassphrase(opts.passphraseFromEnv, paths.caPassphraseFile);
  const root = await loadRootKey(paths, passphrase);
  const finishedInterrupted = finishPendingRotation(paths);
  const current = currentIssuingFiles(paths);
  const generation = Math.max(...listIssuingFiles(paths).map((g) => g.generation)) + 1;
  const keyType = opts.keyType ?? keyTypeOfAlgorithm((await current.certificate.publicKey.export()).algorithm);

  const keys = await generateKeyPair(keyType);
  const certificate = await signIssuingCa({
    root: root.certificate,
    rootKey: root.key,
    rootKeyType: root.keyType,
    publicKey: keys.publicKey,
    commonNamePrefix: prefixOf(root.certificate),
    generation,
    notBefore: new Date(opts.now.getTime() - 5 * 60_000),
  });
  const certificatePem = certificate.toString('pem') + '\n';
  const keyPem = encryptPkcs8Pem(await exportPkcs8(keys.privateKey), passphrase);

  archive(paths, current);
  const staging = fs.mkdtempSync(path.join(paths.caDir, '.rotate-'));
  writeSecretFile(path.join(staging, 'issuing.key'), keyPem);
  fs.writeFileSync(path.join(staging, 'issuing.crt'), certificatePem, { mode: 0o600 });
  for (const f of ['issuing.key', 'issuing.crt']) fsyncFile(path.join(staging, f));

  const next = pendingDir(paths);
  let committed = false;
  return {
    previous: summary(current),
    next: { ...summary({ generation, certificate, fingerprint: fingerprintOfCertificate(certificate) }), keyType, certificatePem },
    finishedInterrupted,
    commit() {
      if (currentIssuingFiles(paths).fingerprint !== current.fingerprint) {
        throw new Refusal('ca_rotation_conflict', 'the issuing CA was rotated by another process meanwhile; nothing was changed, run `kenshin ca rotate` again if another generation is still wanted');
      }
      try {
        fs.renameSync(staging, next);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new Refusal('ca_rotation_conflict', `another rotation is being committed (${next} exists); nothing was changed`);
        throw e;
      }
      committed = true;
    },
    finish() {
      finishPendingRotation(paths);
    },
    abort() {
      if (committed && fs.existsSync(next)) fs.renameSync(next, staging);
      fs.rmSync(staging, { recursive: true, force: true });
    },
  };
}

/**
 * Copies the current pair into ca/retired/issuing-N.*, where it stays: certificates it signed
 * keep chaining to it, and its key keeps signing its CRL. Safe to repeat after a crash.
 */
function archive(paths: DataPaths, current: IssuingCaFiles): void {
  const { certFile, keyFile } = retiredFiles(paths, current.generation);
  if (fs.existsSync(certFile)) {
    const there = new x509.X509Certificate(fs.readFileSync(certFile, 'utf8'));
    if (fingerprintOfCertificate(there) !== current.fingerprint) throw new Error(`${certFile} holds another CA than the current generation ${current.generation}; refusing to overwrite it`);
    if (fs.existsSync(keyFile)) return;
  }
  fs.mkdirSync(retiredDir(paths), { recursive: true, mode: 0o700 });
  // The key first: a retired certificate without its key could not sign its CRL.
  writeFileAtomic(keyFile, fs.readFileSync(current.keyFile), 0o600);
  writeFileAtomic(certFile, fs.readFileSync(current.certFile), 0o600);
}

function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
