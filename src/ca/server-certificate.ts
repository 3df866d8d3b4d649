import fs from 'node:fs';
import tls from 'node:tls';
import { x509 } from './x509.js';
import type { IssuingAuthority } from './authority.js';
import { exportPkcs8, generateKeyPair } from './keys.js';
import { decryptPkcs8Pem, encryptPkcs8Pem } from './keystore.js';
import { pemEncode } from './pem.js';
import { DAY_MS } from '../clock.js';
import type { DataPaths } from '../config.js';
import { withDataDirLock } from './data-dir-lock.js';

/**
 * The HTTPS server's own certificate for the embedded default (localhost / 127.0.0.1), signed
 * by our issuing CA so that trusting our root is all a test browser needs. Reissued on start
 * when it is missing, covers other names than configured, or has less than 30 days left.
 * Production deployments usually bring a public certificate instead (see the README).
 */
const SERVER_VALIDITY_DAYS = 397; // the longest lifetime browsers accept for TLS server certificates
const RENEW_BEFORE_DAYS = 30;

export interface ServerTlsMaterial {
  certChainPem: string;
  keyPem: string;
  notAfter: Date;
}

export async function ensureServerCertificate(
  authority: IssuingAuthority,
  paths: DataPaths,
  names: string[],
  passphrase: string,
  now: Date,
): Promise<ServerTlsMaterial> {
  const usable = () => {
    const existing = readExisting(paths, passphrase);
    if (existing && coversNames(existing.cert, names) && existing.cert.notAfter.getTime() - now.getTime() > RENEW_BEFORE_DAYS * DAY_MS) {
      return { certChainPem: existing.chainPem, keyPem: existing.keyPem, notAfter: existing.cert.notAfter };
    }
    return undefined;
  };
  // Instances sharing the data directory may all find it missing or due at the same start: one
  // issues it under the lock, the others then read that one (key and certificate written by two
  // processes could otherwise end up from different pairs, and the next start would fail).
  return usable() ?? withDataDirLock(paths.dataDir, async () => usable() ?? issue(authority, paths, names, passphrase, now));
}

async function issue(authority: IssuingAuthority, paths: DataPaths, names: string[], passphrase: string, now: Date): Promise<ServerTlsMaterial> {
  const keys = await generateKeyPair('p256');
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const cert = await authority.signServer({ names, publicKey: keys.publicKey, notBefore, notAfter: new Date(notBefore.getTime() + SERVER_VALIDITY_DAYS * DAY_MS) });
  const certChainPem = `${cert.toString('pem')}\n${authority.issuing.toString('pem')}\n`;
  const pkcs8 = await exportPkcs8(keys.privateKey);
  fs.mkdirSync(paths.serverDir, { recursive: true, mode: 0o700 });
  // Write to temp files and rename: a crash mid-write must not leave a key that fits no certificate.
  fs.writeFileSync(paths.serverKey + '.tmp', encryptPkcs8Pem(pkcs8, passphrase), { mode: 0o600 });
  fs.writeFileSync(paths.serverCert + '.tmp', certChainPem, { mode: 0o600 });
  fs.renameSync(paths.serverKey + '.tmp', paths.serverKey);
  fs.renameSync(paths.serverCert + '.tmp', paths.serverCert);
  const keyPem = pemEncode(pkcs8, 'PRIVATE KEY');
  return { certChainPem, keyPem, notAfter: cert.notAfter };
}

function readExisting(paths: DataPaths, passphrase: string): { cert: x509.X509Certificate; chainPem: string; keyPem: string } | undefined {
  if (!fs.existsSync(paths.serverCert) || !fs.existsSync(paths.serverKey)) return undefined;
  try {
    const chainPem = fs.readFileSync(paths.serverCert, 'utf8');
    const cert = new x509.X509Certificate(chainPem.split(/(?<=-----END CERTIFICATE-----)/)[0]!.trim());
    const der = decryptPkcs8Pem(fs.readFileSync(paths.serverKey, 'utf8'), passphrase, paths.serverKey);
    const keyPem = pemEncode(der, 'PRIVATE KEY');
    // Two instances sharing a data dir may both have written a pair at first start: a key and a
    // certificate from different writers would fail every handshake, so a mismatch means "issue anew".
    tls.createSecureContext({ cert: chainPem, key: keyPem });
    return { cert, chainPem, keyPem };
  } catch {
    return undefined; // unreadable: issue a fresh one
  }
}

function coversNames(cert: x509.X509Certificate, names: string[]): boolean {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return false;
  const have = new Set(san.names.items.map((n) => n.value));
  return names.every((n) => have.has(n));
}
