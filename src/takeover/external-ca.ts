import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import type { DataPaths } from '../config.js';
import { x509 } from '../ca/x509.js';
import { Refusal } from '../errors.js';
import { appendAudit } from '../audit/log.js';
import { readCertificate, listIssuingFiles, fingerprintOfCertificate } from '../ca/generations.js';
import { keyTypeOfAlgorithm } from '../ca/keys.js';
import { readPassphrase } from '../ca/keystore.js';
import { pemEncode } from '../ca/pem.js';
import {
  checkCaCertificate,
  externalCrlName,
  listExternalCas,
  readCertificateFile,
  readMatchingKey,
  replaceExternalCrl,
  storeExternalCa,
  type CheckedCa,
  type ExternalCa,
} from '../ca/external.js';
import fs from 'node:fs';

/**
 * `kenshin ca trust` and `kenshin ca adopt`: the first step of taking over a running service. The
 * CA is checked (a CA, its chain verifying to a self-signed root, the key its own), stored under
 * ca/external/ and audited in one step; the running `kenshin serve` picks it up when restarted.
 */

export interface ExternalCaDeps {
  db: Db;
  clock: Clock;
  paths: DataPaths;
  passphraseFromEnv: string | undefined;
}

export interface ExternalCaSummary {
  id: string;
  mode: 'trusted' | 'adopted';
  subject: string;
  fingerprint: string;
  notAfter: string;
  chain: string[];
  /** Adopted: the CRL Kenshin signs for it. */
  crl: string | undefined;
  /** The old system's CRLs kept for nginx (trusted CA, or CAs above an adopted one). */
  keptCrls: number;
}

export function summarise(ca: ExternalCa): ExternalCaSummary {
  const kept = fs.existsSync(`${ca.dir}/crl.pem`) ? (fs.readFileSync(`${ca.dir}/crl.pem`, 'utf8').match(/BEGIN X509 CRL/g) ?? []).length : 0;
  return {
    id: ca.id,
    mode: ca.mode,
    subject: ca.certificate.subject,
    fingerprint: ca.fingerprint,
    notAfter: ca.certificate.notAfter.toISOString(),
    chain: ca.chain.map((c) => c.subject),
    crl: ca.mode === 'adopted' ? externalCrlName(ca.id) : undefined,
    keptCrls: kept,
  };
}

export function listExternal(paths: DataPaths): ExternalCaSummary[] {
  return listExternalCas(paths).map(summarise);
}

interface CaFiles {
  certFile: string;
  chainFile?: string | undefined;
  crlFiles?: string[] | undefined;
}

async function readCa(deps: ExternalCaDeps, files: CaFiles): Promise<CheckedCa> {
  const certs = readCertificateFile(files.certFile, 'cert');
  // A file with the CA followed by its chain is common (the old system's "ca-chain.pem").
  const [certificate, ...inFile] = certs;
  const chain = [...inFile, ...(files.chainFile ? readCertificateFile(files.chainFile, 'chain') : [])];
  const own = [readCertificate(deps.paths.rootCert), ...listIssuingFiles(deps.paths).map((g) => g.certificate)].map(fingerprintOfCertificate);
  if (own.includes(fingerprintOfCertificate(certificate!))) throw new Refusal('ca_known', `${certificate!.subject} is one of Kenshin's own CAs`, { field: 'cert' });
  const checked = checkCaCertificate(certificate!, chain, { cert: 'cert', chain: 'chain' }, deps.clock.now());
  if (listExternalCas(deps.paths).some((c) => c.fingerprint === checked.fingerprint)) {
    throw new Refusal('ca_known', `${checked.certificate.subject} is already known to Kenshin (ca/external/${checked.id}); see \`kenshin ca external\``, { field: 'cert' });
  }
  try {
    keyTypeOfAlgorithm((await checked.certificate.publicKey.export()).algorithm);
  } catch {
    // Kenshin verifies and (for an adopted CA) signs with the key types it knows.
    throw new Refusal('not_a_ca', `${checked.certificate.subject} has a key type Kenshin does not support (P-256, P-384, RSA 2048/3072)`, { field: 'cert' });
  }
  return checked;
}

interface ReadCrl {
  pem: string;
  issuer: x509.X509Certificate;
  number: number | undefined;
  nextUpdate: Date | undefined;
}

/** The old system's CRLs, each verified against the CA (or one of the CAs above it) that signed it. */
async function readCrls(files: string[], cas: x509.X509Certificate[]): Promise<ReadCrl[]> {
  const out: ReadCrl[] = [];
  for (const file of files) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (e) {
      throw new Refusal('invalid_input', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, { field: 'crl' });
    }
    const text = bytes.toString('latin1');
    const ders = text.includes('-----BEGIN X509 CRL-----')
      ? (text.match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? []).map((p) => new Uint8Array(Buffer.from(p.replace(/-----[^-]+-----|\s/g, ''), 'base64')))
      : [new Uint8Array(bytes)];
    for (const der of ders) {
      let crl: x509.X509Crl;
      try {
        crl = new x509.X509Crl(der);
      } catch {
        throw new Refusal('crl_invalid', `${file} is not a CRL (PEM or DER)`, { field: 'crl' });
      }
      const issuer = cas.find((c) => c.subject === crl.issuer);
      if (!issuer || !(await crl.verify({ publicKey: issuer.publicKey }).catch(() => false))) {
        throw new Refusal('crl_invalid', `${file}: the CRL of ${crl.issuer} is not signed by this CA or its chain`, { field: 'crl' });
      }
      const numberExt = crl.getExtension('2.5.29.20');
      out.push({ pem: pemEncode(der, 'X509 CRL'), issuer, number: numberExt ? crlNumberOf(numberExt.value) : undefined, nextUpdate: crl.nextUpdate });
    }
  }
  return out;
}

/** cRLNumber ::= INTEGER, as DER in the extension value. */
function crlNumberOf(value: ArrayBuffer): number | undefined {
  const b = new Uint8Array(value);
  if (b[0] !== 0x02) return undefined;
  let n = 0;
  for (let i = 2; i < 2 + b[1]!; i++) n = n * 256 + b[i]!;
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `kenshin ca trust`: recognise the old CA's certificates without holding its key. */
export async function trustExternalCa(deps: ExternalCaDeps, files: CaFiles, actor: string): Promise<ExternalCaSummary> {
  const ca = await readCa(deps, files);
  const crls = await readCrls(files.crlFiles ?? [], [ca.certificate, ...ca.chain]);
  const now = deps.clock.now();
  const stored = await storeExternalCa(deps.paths, ca, { crlPem: crls.map((c) => c.pem).join('') || undefined }, () =>
    deps.db.transaction().execute(async (trx) => {
      await appendAudit(trx, now, {
        actor,
        action: 'ca.trusted',
        target: `ca:external-${ca.id}`,
        details: { subject: ca.certificate.subject, fingerprint: ca.fingerprint, notAfter: ca.certificate.notAfter.toISOString(), chain: ca.chain.map((c) => c.subject), crls: crls.length },
      });
    }),
  );
  return summarise(stored);
}

/** `kenshin ca adopt`: the same, with the old CA's key, so Kenshin also signs that CA's CRL. */
export async function adoptExternalCa(deps: ExternalCaDeps, files: CaFiles & { keyFile: string; keyPassphrase: string | undefined }, actor: string): Promise<ExternalCaSummary> {
  const ca = await readCa(deps, files);
  const pkcs8 = readMatchingKey(files.keyFile, files.keyPassphrase, ca.certificate);
  const crls = await readCrls(files.crlFiles ?? [], [ca.certificate, ...ca.chain]);
  const own = crls.filter((c) => c.issuer === ca.certificate);
  // Kenshin's CRLs for this CA continue the old system's numbering (cRLNumber only ever grows).
  const lastNumber = Math.max(0, ...own.map((c) => c.number ?? 0));
  const passphrase = readPassphrase(deps.passphraseFromEnv, deps.paths.caPassphraseFile);
  const now = deps.clock.now();
  const stored = await storeExternalCa(deps.paths, ca, { pkcs8, passphrase, crlPem: crls.filter((c) => c.issuer !== ca.certificate).map((c) => c.pem).join('') || undefined }, () =>
    deps.db.transaction().execute(async (trx) => {
      if (lastNumber > 0) {
        await trx
          .insertInto('crls')
          .values({ issuer_fingerprint: ca.fingerprint, number: lastNumber, this_update: now.toISOString(), next_update: now.toISOString(), der: '' })
          .onConflict((oc) => oc.column('issuer_fingerprint').doNothing())
          .execute();
      }
      await appendAudit(trx, now, {
        actor,
        action: 'ca.adopted',
        target: `ca:external-${ca.id}`,
        details: { subject: ca.certificate.subject, fingerprint: ca.fingerprint, notAfter: ca.certificate.notAfter.toISOString(), chain: ca.chain.map((c) => c.subject), crlNumberFrom: lastNumber },
      });
    }),
  );
  return summarise(stored);
}

/** `kenshin ca trust-crl`: a newer CRL from the old system for a trusted CA (for nginx's ssl_crl). */
export async function replaceTrustedCrl(deps: ExternalCaDeps, crlFiles: string[], actor: string): Promise<{ ca: ExternalCaSummary; nextUpdate: string | undefined }> {
  const cas = listExternalCas(deps.paths);
  const all = cas.flatMap((c) => [c.certificate, ...c.chain]);
  const crls = await readCrls(crlFiles, all);
  const target = cas.find((c) => crls.some((r) => r.issuer === c.certificate || c.chain.includes(r.issuer)));
  if (!target || crls.length === 0) throw new Refusal('crl_invalid', 'the CRL is not of a CA Kenshin trusts', { field: 'crl' });
  if (target.mode === 'adopted' && crls.some((r) => r.issuer === target.certificate)) {
    throw new Refusal('crl_invalid', `Kenshin signs the CRL of ${target.certificate.subject} itself (it is adopted): nothing to replace`, { field: 'crl' });
  }
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await appendAudit(trx, now, { actor, action: 'ca.crl_replaced', target: `ca:external-${target.id}`, details: { crls: crls.map((c) => ({ issuer: c.issuer.subject, number: c.number ?? null, nextUpdate: c.nextUpdate?.toISOString() ?? null })) } });
    replaceExternalCrl(target, crls.map((c) => c.pem).join(''));
  });
  return { ca: summarise(listExternalCas(deps.paths).find((c) => c.id === target.id)!), nextUpdate: crls.map((c) => c.nextUpdate?.toISOString()).filter(Boolean).sort()[0] };
}
