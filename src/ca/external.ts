import { createPrivateKey, createPublicKey, X509Certificate as NodeX509 } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { x509 } from './x509.js';
import { Refusal } from '../errors.js';
import { fingerprintOfCertificate } from './generations.js';
import { encryptPkcs8Pem, writeSecretFile } from './keystore.js';
import type { DataPaths } from '../config.js';

/**
 * CAs Kenshin did not create: the issuing CA of a service Kenshin takes over (`kenshin ca trust`,
 * `kenshin ca adopt`). Their certificates are already in the clinics' browsers; Kenshin accepts
 * them for login and renewal (renewed into Kenshin's own issuing CA, same subject), so a migration
 * needs no out-of-band re-issue.
 *
 *   ca/external/<id>/ca.crt      the CA certificate (PEM)
 *   ca/external/<id>/chain.pem   the CAs above it up to a self-signed root, when it is not one itself
 *   ca/external/<id>/ca.key      adopted only: its key, encrypted like Kenshin's own (CA passphrase)
 *   ca/external/<id>/crl.pem     trusted only, optional: the old system's CRL, handed to nginx as is
 *
 * <id> is the first 16 hex digits of the CA certificate's SHA-256: stable, so the CRL URL of an
 * adopted CA (/crl/external-<id>.crl) never changes. Files under ca/, so `kenshin backup` and
 * copying ca/ to another instance carry them like the rest of the CA.
 *
 * A trusted CA's key stays with the old operator: Kenshin refuses its revoked certificates from its
 * own database, but cannot sign a CRL for it. An adopted CA's CRL is signed here like any other.
 */

export type ExternalMode = 'trusted' | 'adopted';

export interface ExternalCa {
  id: string;
  mode: ExternalMode;
  certificate: x509.X509Certificate;
  /** The CAs above it, nearest first, ending at a self-signed root; empty when it is the root. */
  chain: x509.X509Certificate[];
  fingerprint: string;
  dir: string;
  keyFile: string | undefined;
  /** Trusted CAs: the old system's CRL, if the operator gave one. */
  crlFile: string | undefined;
}

export function externalDir(paths: DataPaths): string {
  return path.join(paths.caDir, 'external');
}

export function externalIdOf(fingerprint: string): string {
  return fingerprint.slice(0, 16);
}

/** The CRL file name (without extension) of an adopted CA under /crl/. */
export function externalCrlName(id: string): string {
  return `external-${id}`;
}

function parseCertificates(pem: string): x509.X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new x509.X509Certificate(p));
}

/** Every external CA on disk, in id order. */
export function listExternalCas(paths: DataPaths): ExternalCa[] {
  const dir = externalDir(paths);
  if (!fs.existsSync(dir)) return [];
  const out: ExternalCa[] = [];
  for (const id of fs.readdirSync(dir).sort()) {
    // Temp directories of an interrupted trust/adopt start with a dot: not a CA (yet).
    if (!/^[0-9a-f]{16}$/.test(id)) continue;
    const caDir = path.join(dir, id);
    const certFile = path.join(caDir, 'ca.crt');
    if (!fs.existsSync(certFile)) continue;
    const certificate = new x509.X509Certificate(fs.readFileSync(certFile, 'utf8'));
    const chainFile = path.join(caDir, 'chain.pem');
    const keyFile = path.join(caDir, 'ca.key');
    const crlFile = path.join(caDir, 'crl.pem');
    const hasKey = fs.existsSync(keyFile);
    out.push({
      id,
      mode: hasKey ? 'adopted' : 'trusted',
      certificate,
      chain: fs.existsSync(chainFile) ? parseCertificates(fs.readFileSync(chainFile, 'utf8')) : [],
      fingerprint: fingerprintOfCertificate(certificate),
      dir: caDir,
      keyFile: hasKey ? keyFile : undefined,
      crlFile: !hasKey && fs.existsSync(crlFile) ? crlFile : undefined,
    });
  }
  return out;
}

// ---- Checking what an operator hands over ---------------------------------------------------------

function node(cert: x509.X509Certificate): NodeX509 {
  return new NodeX509(Buffer.from(cert.rawData));
}

function isCa(cert: x509.X509Certificate): boolean {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  return bc?.ca === true;
}

function describe(cert: x509.X509Certificate): string {
  return cert.subject;
}

/** Reads PEM (one or more certificates) or DER; the field names the option in the refusal. */
export function readCertificateFile(file: string, field: string): x509.X509Certificate[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Refusal('invalid_input', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { field });
  }
  const text = bytes.toString('latin1');
  try {
    if (text.includes('-----BEGIN CERTIFICATE-----')) {
      const certs = parseCertificates(text);
      if (certs.length > 0) return certs;
    } else {
      return [new x509.X509Certificate(new Uint8Array(bytes))];
    }
  } catch {
    /* fall through */
  }
  throw new Refusal('invalid_input', `${file} holds no X.509 certificate (PEM or DER)`, { field });
}

export interface CheckedCa {
  certificate: x509.X509Certificate;
  chain: x509.X509Certificate[];
  fingerprint: string;
  id: string;
}

/**
 * A CA certificate and the chain above it, checked: basicConstraints CA, keyCertSign when keyUsage
 * is present, each signature verified by the next certificate up, and the last one self-signed —
 * nginx (and OpenSSL generally) builds a chain only to a self-signed root, so an intermediate
 * without its root would be refused at every handshake.
 */
export function checkCaCertificate(certificate: x509.X509Certificate, chain: x509.X509Certificate[], field: { cert: string; chain: string }, now: Date): CheckedCa {
  const all = [certificate, ...chain];
  for (const [i, c] of all.entries()) {
    const f = i === 0 ? field.cert : field.chain;
    if (!isCa(c)) throw new Refusal('not_a_ca', `${describe(c)} is not a CA certificate (no basicConstraints CA:TRUE)`, { field: f });
    const ku = c.getExtension(x509.KeyUsagesExtension);
    if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) throw new Refusal('not_a_ca', `${describe(c)} may not sign certificates (keyUsage lacks keyCertSign)`, { field: f });
    if (c.notAfter.getTime() <= now.getTime()) throw new Refusal('ca_expired', `${describe(c)} expired on ${c.notAfter.toISOString()}: its certificates cannot be used any more`, { field: f });
  }
  for (let i = 0; i < all.length; i++) {
    const c = node(all[i]!);
    const up = all[i + 1];
    if (!up) {
      if (!c.checkIssued(c) || !c.verify(c.publicKey)) {
        throw new Refusal('chain_incomplete', `${describe(all[i]!)} is signed by ${all[i]!.issuer}: give that CA (up to the self-signed root) with --chain`, { field: i === 0 ? field.chain : field.chain });
      }
      continue;
    }
    const issuer = node(up);
    if (!c.checkIssued(issuer) || !c.verify(issuer.publicKey)) {
      throw new Refusal('chain_invalid', `${describe(all[i]!)} is not signed by ${describe(up)} (the chain does not verify)`, { field: field.chain });
    }
  }
  const fingerprint = fingerprintOfCertificate(certificate);
  return { certificate, chain, fingerprint, id: externalIdOf(fingerprint) };
}

/** A private key file (PKCS#8, or traditional RSA/EC; encrypted or not) that must belong to `certificate`: its PKCS#8 DER. */
export function readMatchingKey(file: string, passphrase: string | undefined, certificate: x509.X509Certificate): Uint8Array {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Refusal('invalid_input', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { field: 'key' });
  }
  let key;
  try {
    key = createPrivateKey(passphrase === undefined ? { key: pem } : { key: pem, passphrase });
  } catch {
    const encrypted = /ENCRYPTED/.test(pem);
    // Never the passphrase, never the key: what is wrong and what to do.
    throw new Refusal(
      'key_unreadable',
      encrypted
        ? passphrase === undefined
          ? `${file} is encrypted: give its passphrase with --passphrase-stdin`
          : `cannot decrypt ${file}: wrong passphrase`
        : `${file} is not a private key (PEM)`,
      { field: 'key' },
    );
  }
  const certKey = node(certificate).publicKey.export({ type: 'spki', format: 'der' });
  if (!createPublicKey(key).export({ type: 'spki', format: 'der' }).equals(certKey)) {
    throw new Refusal('key_mismatch', `${file} is not the key of ${describe(certificate)}`, { field: 'key' });
  }
  return new Uint8Array(key.export({ type: 'pkcs8', format: 'der' }));
}

/**
 * Writes the CA's directory into a temp directory and renames it into place: a crash leaves either
 * no CA or a complete one. `commit` runs between the two (the audit transaction), so the event
 * exists exactly when the CA does.
 */
export async function storeExternalCa(
  paths: DataPaths,
  ca: CheckedCa,
  extra: { pkcs8?: Uint8Array; passphrase?: string; crlPem?: string },
  commit: () => Promise<void>,
): Promise<ExternalCa> {
  const root = externalDir(paths);
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const target = path.join(root, ca.id);
  if (fs.existsSync(target)) throw new Refusal('ca_known', `${describe(ca.certificate)} is already known to Kenshin (ca/external/${ca.id})`, { field: 'cert' });
  const tmp = fs.mkdtempSync(path.join(root, `.${ca.id}-`));
  try {
    fs.writeFileSync(path.join(tmp, 'ca.crt'), ca.certificate.toString('pem') + '\n', { mode: 0o600 });
    if (ca.chain.length > 0) fs.writeFileSync(path.join(tmp, 'chain.pem'), ca.chain.map((c) => c.toString('pem') + '\n').join(''), { mode: 0o600 });
    if (extra.pkcs8) writeSecretFile(path.join(tmp, 'ca.key'), encryptPkcs8Pem(extra.pkcs8, extra.passphrase!));
    if (extra.crlPem) fs.writeFileSync(path.join(tmp, 'crl.pem'), extra.crlPem, { mode: 0o600 });
    await commit();
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    extra.pkcs8?.fill(0);
  }
  return listExternalCas(paths).find((c) => c.id === ca.id)!;
}

/** Replaces a trusted CA's stored CRL (the old system published a new one). */
export function replaceExternalCrl(ca: ExternalCa, crlPem: string): void {
  const file = path.join(ca.dir, 'crl.pem');
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, crlPem, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/**
 * The old system's CRLs Kenshin keeps for CAs whose key it does not hold, PEM: nginx `ssl_crl`
 * needs a CRL for every CA in a chain, and without one it refuses every certificate of that CA.
 */
export function externalCrlPems(paths: DataPaths): string[] {
  return listExternalCas(paths).flatMap((c) => {
    const file = path.join(c.dir, 'crl.pem');
    return fs.existsSync(file) ? [fs.readFileSync(file, 'utf8').trimEnd() + '\n'] : [];
  });
}
