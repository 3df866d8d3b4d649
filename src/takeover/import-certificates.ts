import { certificatesChanged } from '../identity/peer.js';
import { createHash, X509Certificate as NodeX509 } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import type { DataPaths, KeyType } from '../config.js';
import type { Tenant } from '../db/schema.js';
import { x509 } from '../ca/x509.js';
import { keyTypeOfAlgorithm, type AnyKeyType } from '../ca/keys.js';
import { listExternalCas, type ExternalCa } from '../ca/external.js';
import { listIssuingFiles, readCertificate } from '../ca/generations.js';
import { assertPrintable } from '../ca/subject.js';
import { appendAudit } from '../audit/log.js';
import { Refusal } from '../errors.js';
import { tenantCodeIs, tenantCodeKey } from '../db/tenant-code.js';
import * as v from '../tenancy/validation.js';
import { REVOCATION_REASONS } from '../certificates/service.js';
import type { Candidate, TenantMap } from './sources.js';

/**
 * `kenshin cert import`: registers certificates of a CA Kenshin trusts or adopted (external.ts) so
 * that they log in and renew like Kenshin's own. Two passes: every candidate is checked first
 * (readable, an end-entity certificate for clientAuth, signed by a known external CA, mapped to a
 * tenant, no serial clash), then everything accepted is written in ONE transaction, each
 * certificate with its audit event. Any refusal aborts the whole run unless the operator asked to
 * continue. A second run finds every certificate by fingerprint and changes nothing; a certificate
 * the old system revoked since the last run is revoked here too.
 */

export type TenantRule = { kind: 'map'; map: TenantMap } | { kind: 'cn' };

export interface ImportRequest {
  candidates: Candidate[];
  tenants: TenantRule;
  /** Create a tenant named in the map or the CN when it does not exist (name: the subject's O). */
  createTenants: boolean;
  dryRun: boolean;
  continueOnError: boolean;
  actor: string;
  /** Successors of a certificate whose key type Kenshin cannot issue (e.g. RSA 4096) get this one. */
  fallbackKeyType: KeyType;
}

export type Outcome =
  | { source: string; result: 'imported'; serial: string; tenant: string; status: 'active' | 'revoked'; notAfter: string; createdTenant: boolean; keyType: AnyKeyType }
  | { source: string; result: 'unchanged'; serial: string; tenant: string }
  | { source: string; result: 'revoked'; serial: string; tenant: string }
  | { source: string; result: 'skipped'; serial?: string; reason: string }
  | { source: string; result: 'rejected'; serial?: string; reason: string };

export interface ImportReport {
  dryRun: boolean;
  outcomes: Outcome[];
  counts: Record<Outcome['result'], number>;
  tenantsCreated: string[];
}

interface Accepted {
  candidate: Candidate;
  cert: x509.X509Certificate;
  der: Uint8Array;
  serial: string;
  fingerprint: string;
  issuer: ExternalCa;
  tenantCode: string;
  tenantName: string;
  label: string | undefined;
  keyType: AnyKeyType;
  status: 'active' | 'revoked';
  revokedAt: Date | undefined;
  reason: string | undefined;
}

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EKU = '2.5.29.37.0';
const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';

/** openssl's reason names → the ones Kenshin's CRL writes; anything else is "unspecified". */
function reasonOf(r: string | undefined): string {
  if (!r) return 'unspecified';
  return (REVOCATION_REASONS as readonly string[]).includes(r) ? r : 'unspecified';
}

function nodeCert(c: x509.X509Certificate): NodeX509 {
  return new NodeX509(Buffer.from(c.rawData));
}

/**
 * The key type its successors get: the certificate's own when Kenshin issues client certificates of
 * that type (P-256, RSA 2048), else the configured default (KENSHIN_KEY_TYPE).
 */
async function keyTypeOf(cert: x509.X509Certificate, fallback: KeyType): Promise<AnyKeyType> {
  try {
    const t = keyTypeOfAlgorithm((await cert.publicKey.export()).algorithm);
    return t === 'rsa2048' || t === 'p256' ? t : fallback;
  } catch {
    return fallback;
  }
}

/** Why this certificate cannot be a client certificate here, or undefined. */
function usageProblem(cert: x509.X509Certificate): string | undefined {
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca) return 'a CA certificate, not a client certificate';
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  // No extendedKeyUsage means no restriction (RFC 5280 §4.2.1.12): TLS stacks accept it for clients.
  if (eku && !eku.usages.some((u) => u === CLIENT_AUTH || u === ANY_EKU)) return `not for client authentication (extendedKeyUsage ${eku.usages.join(', ')})`;
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.digitalSignature) === 0) return 'keyUsage lacks digitalSignature (it cannot sign a TLS handshake)';
  return undefined;
}

function signedBy(cert: x509.X509Certificate, cas: ExternalCa[]): ExternalCa | undefined {
  const n = nodeCert(cert);
  return cas.find((ca) => {
    const issuer = nodeCert(ca.certificate);
    return n.checkIssued(issuer) && n.verify(issuer.publicKey);
  });
}

export async function importCertificates(deps: { db: Db; clock: Clock; paths: DataPaths }, req: ImportRequest): Promise<ImportReport> {
  const now = deps.clock.now();
  const external = listExternalCas(deps.paths);
  const own = [readCertificate(deps.paths.rootCert), ...listIssuingFiles(deps.paths).map((g) => g.certificate)];
  const outcomes: Outcome[] = [];
  const accepted: Accepted[] = [];
  const toRevoke: { candidate: Candidate; id: number; serial: string; tenant: string; tenantId: number; revokedAt: Date; reason: string }[] = [];
  const seenFingerprints = new Map<string, string>();
  const seenSerials = new Map<string, string>();
  const tenantCache = new Map<string, Tenant | undefined>();
  const findTenant = async (code: string) => {
    const key = tenantCodeKey(code);
    if (!tenantCache.has(key)) tenantCache.set(key, await deps.db.selectFrom('tenants').selectAll().where(tenantCodeIs('code'), '=', key).executeTakeFirst());
    return tenantCache.get(key);
  };
  const newTenants = new Map<string, { code: string; name: string }>();

  for (const c of req.candidates) {
    const reject = (reason: string, serial?: string) => outcomes.push({ source: c.source, result: 'rejected', reason, ...(serial ? { serial } : {}) });
    if (!c.der) {
      reject(c.unreadable ?? 'unreadable');
      continue;
    }
    let cert: x509.X509Certificate;
    try {
      cert = new x509.X509Certificate(c.der as Uint8Array<ArrayBuffer>);
    } catch {
      reject('not an X.509 certificate');
      continue;
    }
    const serial = cert.serialNumber.toLowerCase().replace(/^0+/, '') || '0';
    if (c.index && c.index.serial !== serial) {
      reject(`the file holds serial ${serial}, the index line says ${c.index.serial}`, serial);
      continue;
    }
    const fingerprint = createHash('sha256').update(c.der).digest('hex');
    // The same certificate twice in one run (a directory and the index, say): once is enough.
    if (seenFingerprints.has(fingerprint)) {
      outcomes.push({ source: c.source, result: 'skipped', serial, reason: `the same certificate as ${seenFingerprints.get(fingerprint)}` });
      continue;
    }
    seenFingerprints.set(fingerprint, c.source);
    const existing = await deps.db.selectFrom('certificates').innerJoin('tenants', 'tenants.id', 'certificates.tenant_id').select(['certificates.id', 'certificates.status', 'certificates.serial', 'tenants.code', 'tenants.id as tenant_id']).where('fingerprint_sha256', '=', fingerprint).executeTakeFirst();
    if (existing) {
      if (c.index?.status === 'R' && existing.status === 'active') {
        toRevoke.push({ candidate: c, id: existing.id, serial, tenant: existing.code, tenantId: existing.tenant_id, revokedAt: c.index.revokedAt!, reason: reasonOf(c.index.reason) });
        outcomes.push({ source: c.source, result: 'revoked', serial, tenant: existing.code });
      } else outcomes.push({ source: c.source, result: 'unchanged', serial, tenant: existing.code });
      continue;
    }
    const problem = usageProblem(cert);
    if (problem) {
      reject(problem, serial);
      continue;
    }
    const issuer = signedBy(cert, external);
    if (!issuer) {
      const n = nodeCert(cert);
      const ours = own.some((o) => n.checkIssued(nodeCert(o)) && n.verify(nodeCert(o).publicKey));
      reject(
        ours
          ? `issued by Kenshin's own CA but not in its database: re-issue it (kenshin cert issue --reissue) rather than import it`
          : `not signed by a CA Kenshin trusts or adopted (issuer ${cert.issuer}): run \`kenshin ca trust --cert …\` or \`kenshin ca adopt …\` first`,
        serial,
      );
      continue;
    }
    if (cert.notAfter.getTime() <= now.getTime() || c.index?.status === 'E') {
      outcomes.push({ source: c.source, result: 'skipped', serial, reason: `expired on ${cert.notAfter.toISOString().slice(0, 10)}: it cannot log in any more (issue a new one out of band)` });
      continue;
    }
    if (seenSerials.has(serial)) {
      reject(`serial ${serial} is also on ${seenSerials.get(serial)} with a different certificate`, serial);
      continue;
    }
    const clash = await deps.db.selectFrom('certificates').select('id').where('serial', '=', serial).executeTakeFirst();
    if (clash) {
      reject(`serial ${serial} is already used by another certificate in Kenshin's database`, serial);
      continue;
    }
    seenSerials.set(serial, c.source);

    // Which tenant: the map (by serial or fingerprint), or the subject's CN.
    let tenantCode: string | undefined;
    let label: string | undefined;
    if (req.tenants.kind === 'map') {
      const hit = req.tenants.map.bySerial.get(serial) ?? req.tenants.map.byFingerprint.get(fingerprint);
      if (!hit) {
        reject(`serial ${serial} is not in ${req.tenants.map.file}`, serial);
        continue;
      }
      tenantCode = hit.tenant;
      label = hit.label;
    } else {
      tenantCode = cert.subjectName.getField(OID_CN)[0];
      if (!tenantCode) {
        reject('the subject has no CN to take the tenant code from', serial);
        continue;
      }
    }
    try {
      tenantCode = v.tenantCode(tenantCode);
      if (label !== undefined) assertPrintable('label', label);
    } catch (e) {
      reject((e as Error).message, serial);
      continue;
    }
    const subjectO = cert.subjectName.getField(OID_O)[0];
    const tenant = await findTenant(tenantCode);
    let tenantName = tenant?.name;
    if (!tenant) {
      const key = tenantCodeKey(tenantCode);
      if (!req.createTenants && !newTenants.has(key)) {
        reject(`tenant ${tenantCode} does not exist: create it (kenshin tenant add) or pass --create-tenants`, serial);
        continue;
      }
      const planned = newTenants.get(key);
      if (planned) tenantName = planned.name;
      else {
        try {
          tenantName = v.displayName('name', subjectO ?? tenantCode);
        } catch (e) {
          reject(`cannot create tenant ${tenantCode}: ${(e as Error).message}`, serial);
          continue;
        }
        newTenants.set(key, { code: tenantCode, name: tenantName });
      }
    }
    const revoked = c.index?.status === 'R';
    accepted.push({
      candidate: c,
      cert,
      der: c.der,
      serial,
      fingerprint,
      issuer,
      tenantCode: tenant?.code ?? tenantCode,
      tenantName: tenantName!,
      label,
      keyType: await keyTypeOf(cert, req.fallbackKeyType),
      status: revoked ? 'revoked' : 'active',
      revokedAt: revoked ? c.index!.revokedAt : undefined,
      reason: revoked ? reasonOf(c.index!.reason) : undefined,
    });
  }

  const rejected = outcomes.filter((o) => o.result === 'rejected');
  const report = (final: Outcome[], tenantsCreated: string[], dryRun: boolean): ImportReport => {
    const counts = { imported: 0, unchanged: 0, revoked: 0, skipped: 0, rejected: 0 };
    for (const o of final) counts[o.result]++;
    return { dryRun, outcomes: final, counts, tenantsCreated };
  };
  const planned: Outcome[] = accepted.map((a) => ({
    source: a.candidate.source,
    result: 'imported',
    serial: a.serial,
    tenant: a.tenantCode,
    status: a.status,
    notAfter: a.cert.notAfter.toISOString(),
    createdTenant: newTenants.has(tenantCodeKey(a.tenantCode)),
    keyType: a.keyType,
  }));
  const all = [...outcomes, ...planned].sort((x, y) => req.candidates.findIndex((c) => c.source === x.source) - req.candidates.findIndex((c) => c.source === y.source));
  if (rejected.length > 0 && !req.continueOnError) {
    throw new Refusal(
      'import_rejected',
      `nothing imported: ${rejected.length} of ${req.candidates.length} certificates refused (fix them, or pass --continue-on-error to import the rest):\n` +
        rejected.map((r) => `  ${r.source}: ${(r as { reason: string }).reason}`).join('\n'),
      { field: 'files', details: { rejected } },
    );
  }
  if (req.dryRun || (accepted.length === 0 && toRevoke.length === 0)) return report(all, req.dryRun ? [...newTenants.values()].map((t) => t.code) : [], req.dryRun);

  await deps.db.transaction().execute(async (trx) => {
    const ids = new Map<string, number>();
    for (const t of newTenants.values()) {
      const row = await trx.insertInto('tenants').values({ code: t.code, name: t.name, contact_email: null, created_at: now.toISOString() }).returning('id').executeTakeFirstOrThrow();
      ids.set(tenantCodeKey(t.code), row.id);
      await appendAudit(trx, now, { actor: req.actor, action: 'tenant.created', tenantId: row.id, target: `tenant:${t.code}`, details: { code: t.code, name: t.name, via: 'import' } });
    }
    for (const a of accepted) {
      const key = tenantCodeKey(a.tenantCode);
      const tenantId = ids.get(key) ?? (await findTenant(a.tenantCode))!.id;
      const row = await trx
        .insertInto('certificates')
        .values({
          serial: a.serial,
          tenant_id: tenantId,
          subject: a.cert.subject,
          // Renewal copies these bytes into the successor: same name in the browser, as the manual says.
          subject_der: Buffer.from(a.cert.subjectName.toArrayBuffer()).toString('base64'),
          label: a.label ?? null,
          key_type: a.keyType,
          fingerprint_sha256: a.fingerprint,
          not_before: a.cert.notBefore.toISOString(),
          not_after: a.cert.notAfter.toISOString(),
          status: a.status,
          revoked_at: a.revokedAt?.toISOString() ?? null,
          revocation_reason: a.reason ?? null,
          predecessor_id: null,
          issued_via: 'operator',
          issuer_fingerprint: a.issuer.fingerprint,
          pem: a.cert.toString('pem') + '\n',
          created_at: now.toISOString(),
        })
        .returning(['id'])
        .executeTakeFirstOrThrow();
      await trx.insertInto('certificate_imports').values({ certificate_id: row.id, source: a.candidate.source, imported_at: now.toISOString() }).execute();
      await appendAudit(trx, now, {
        actor: req.actor,
        action: 'certificate.imported',
        tenantId,
        target: `certificate:${a.serial}`,
        details: { serial: a.serial, source: a.candidate.source, issuer: a.issuer.certificate.subject, issuerFingerprint: a.issuer.fingerprint, notAfter: a.cert.notAfter.toISOString(), status: a.status, ...(a.revokedAt ? { revokedAt: a.revokedAt.toISOString(), reason: a.reason } : {}) },
      });
    }
    for (const r of toRevoke) {
      await trx.updateTable('certificates').set({ status: 'revoked', revoked_at: r.revokedAt.toISOString(), revocation_reason: r.reason }).where('id', '=', r.id).where('status', '=', 'active').execute();
      await appendAudit(trx, now, { actor: req.actor, action: 'certificate.revoked', tenantId: r.tenantId, target: `certificate:${r.serial}`, details: { serial: r.serial, reason: r.reason, via: 'import', source: r.candidate.source, revokedAt: r.revokedAt.toISOString() } });
    }
  });
  if (toRevoke.length) certificatesChanged();
  return report(all, [...newTenants.values()].map((t) => t.code), false);
}
