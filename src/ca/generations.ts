import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { x509 } from './x509.js';
import { Refusal } from '../errors.js';
import { writeFileAtomic } from '../atomic-file.js';
import type { DataPaths } from '../config.js';

/**
 * Generations of the issuing CA under one root (`kenshin ca rotate`), on disk:
 *
 *   ca/root.crt, root.key            the root; signs issuing CAs and the root CRL
 *   ca/issuing.crt, issuing.key      the CURRENT issuing CA: signs every new certificate. Same
 *                                    files as before rotation existed, so everything that reads
 *                                    them (mint workers, bench, openssl in tests) keeps working
 *   ca/retired/issuing-N.crt, .key   earlier generations: still trusted until they expire, and
 *                                    their keys still sign their own CRLs
 *   ca/next/issuing.crt, .key        only while a rotation finishes (or after a crash in it):
 *                                    when present it IS the current CA
 *
 * A rotation archives the current pair into retired/ (copies; harmless if repeated), then
 * renames a complete staging directory to ca/next (the one atomic commit point), then copies
 * next/ over issuing.* and removes next/. At every instant one complete pair is the current
 * CA: issuing.* before the commit, next/ from the commit until the copy is done, issuing.*
 * after. A crash can leave next/ behind; it is read as the current CA and the next rotation
 * (or finishPendingRotation) completes the copy.
 *
 * The generation number is part of the CA's own subject ("… Issuing CA N", as init has always
 * named generation 1), so it cannot drift from the certificate: deleting retired files, or
 * copying ca/ to another machine, never renumbers a CA and so never changes its CRL URL.
 */

export interface IssuingCaFiles {
  generation: number;
  certificate: x509.X509Certificate;
  /** SHA-256 of the DER, lowercase hex: how certificates.issuer_fingerprint and crls name the CA. */
  fingerprint: string;
  certFile: string;
  keyFile: string;
  current: boolean;
}

export function pendingDir(paths: DataPaths): string {
  return path.join(paths.caDir, 'next');
}

export function retiredDir(paths: DataPaths): string {
  return path.join(paths.caDir, 'retired');
}

export function retiredFiles(paths: DataPaths, generation: number): { certFile: string; keyFile: string } {
  const base = path.join(retiredDir(paths), `issuing-${generation}`);
  return { certFile: `${base}.crt`, keyFile: `${base}.key` };
}

export function fingerprintOfCertificate(cert: x509.X509Certificate): string {
  return createHash('sha256').update(new Uint8Array(cert.rawData)).digest('hex');
}

const GENERATION_CN = /Issuing CA (\d+)$/;

/** The generation in "… Issuing CA N"; a CA without one (not made by kenshin) counts as `fallback`. */
export function generationOf(cert: x509.X509Certificate, fallback: number): number {
  const cn = cert.subjectName.getField('2.5.4.3')[0] ?? '';
  const m = GENERATION_CN.exec(cn);
  return m ? Number(m[1]) : fallback;
}

/** A CA certificate file; missing means the data directory was never initialised. */
export function readCertificate(file: string): x509.X509Certificate {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch {
    throw new Refusal('not_initialized', `no CA at ${file}: run \`kenshin init\` first`, { field: file });
  }
  try {
    return new x509.X509Certificate(pem);
  } catch {
    // The parser's own message ("Unsupported format of 'raw' argument") names neither the file nor a way out.
    throw new Refusal('ca_file_damaged', `${file} is not a PEM certificate (damaged?): restore it from a backup (kenshin restore, or the same file of a \`kenshin backup\` directory)`, { field: file });
  }
}

/** The CA that signs new certificates: ca/next while a rotation finishes, else ca/issuing.*. */
export function currentIssuingFiles(paths: DataPaths): IssuingCaFiles {
  const next = pendingDir(paths);
  const inNext = fs.existsSync(path.join(next, 'issuing.crt'));
  const certFile = inNext ? path.join(next, 'issuing.crt') : paths.issuingCert;
  const keyFile = inNext ? path.join(next, 'issuing.key') : paths.issuingKey;
  const certificate = readCertificate(certFile);
  return { generation: generationOf(certificate, 1), certificate, fingerprint: fingerprintOfCertificate(certificate), certFile, keyFile, current: true };
}

/** Every issuing CA under the root, oldest generation first; exactly one is `current`. */
export function listIssuingFiles(paths: DataPaths): IssuingCaFiles[] {
  const current = currentIssuingFiles(paths);
  const all = new Map<string, IssuingCaFiles>([[current.fingerprint, current]]);
  const dir = retiredDir(paths);
  const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  for (const name of names) {
    const m = /^issuing-(\d+)\.crt$/.exec(name);
    if (!m) continue; // temp files of an interrupted write, keys, anything an operator left
    const certFile = path.join(dir, name);
    const certificate = readCertificate(certFile);
    const fingerprint = fingerprintOfCertificate(certificate);
    // Between archiving and the commit, the current CA is also in retired/: it stays current.
    if (all.has(fingerprint)) continue;
    all.set(fingerprint, { generation: generationOf(certificate, Number(m[1])), certificate, fingerprint, certFile, keyFile: certFile.replace(/\.crt$/, '.key'), current: false });
  }
  const list = [...all.values()].sort((a, b) => a.generation - b.generation);
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.generation === list[i - 1]!.generation) {
      throw new Error(`two issuing CAs claim generation ${list[i]!.generation}: ${list[i - 1]!.certFile} and ${list[i]!.certFile}`);
    }
  }
  return list;
}

/**
 * Completes a rotation whose commit (ca/next) happened but whose copy over ca/issuing.* did not
 * (a crash). Idempotent; returns whether there was anything to finish.
 */
export function finishPendingRotation(paths: DataPaths): boolean {
  const next = pendingDir(paths);
  if (!fs.existsSync(path.join(next, 'issuing.crt'))) {
    // A next/ without a certificate is the leftover of a finished removal; nothing is pending.
    if (fs.existsSync(next)) fs.rmSync(next, { recursive: true, force: true });
    return false;
  }
  writeFileAtomic(paths.issuingKey, fs.readFileSync(path.join(next, 'issuing.key')), 0o600);
  writeFileAtomic(paths.issuingCert, fs.readFileSync(path.join(next, 'issuing.crt')), 0o600);
  // The certificate first: once it is gone next/ no longer counts as the current CA, and
  // issuing.* already holds the same pair.
  fs.rmSync(path.join(next, 'issuing.crt'), { force: true });
  fs.rmSync(next, { recursive: true, force: true });
  return true;
}

/**
 * Where each generation's CRL lives, and the URL its certificates carry as CRL distribution point.
 *
 * Generation 1 keeps `/crl/issuing.crl`: that URL is already in certificates in the field, and a
 * distribution point must keep naming the CRL of the CA that signed the certificate for as long as
 * the certificate lives. Later generations get `/crl/issuing-N.crl`. The DP of generation N is
 * derived from KENSHIN_CRL_URL by the same rule: `-N` goes before the first dot of the last path
 * segment (https://h/crl/issuing.crl → https://h/crl/issuing-2.crl; a segment without a dot gets
 * `-N` appended). So one setting serves every generation, and a certificate's DP never changes
 * meaning when the CA rotates again.
 */
export function crlName(generation: number): string {
  return generation === 1 ? 'issuing' : `issuing-${generation}`;
}

export function crlUrlForGeneration(base: string | undefined, generation: number): string | undefined {
  if (base === undefined || generation === 1) return base;
  const url = new URL(base);
  const slash = url.pathname.lastIndexOf('/');
  const segment = url.pathname.slice(slash + 1);
  const dot = segment.indexOf('.');
  const named = segment === '' ? `${crlName(generation)}.crl` : dot < 0 ? `${segment}-${generation}` : `${segment.slice(0, dot)}-${generation}${segment.slice(dot)}`;
  url.pathname = url.pathname.slice(0, slash + 1) + named;
  return url.toString();
}
