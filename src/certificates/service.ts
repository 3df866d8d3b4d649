import type { Db } from '../db/database.js';
import { sessionsChanged } from '../identity/sessions.js';
import { tenantCodeIs, tenantCodeKey } from '../db/tenant-code.js';
import { certificatesChanged } from '../identity/peer.js';
import type { Clock } from '../clock.js';
import { DAY_MS } from '../clock.js';
import type { CertificateRow, IssuedVia, Tenant } from '../db/schema.js';
import type { Minted, Minter } from '../ca/mint.js';
import type { AnyKeyType } from '../ca/keys.js';
import type { Pkcs12Profile } from '../ca/pkcs12.js';
import { buildSubject, validateLabel } from '../ca/subject.js';
import { normaliseSerial } from '../ca/serial.js';
import { appendAudit } from '../audit/log.js';
import { Refusal, invalidInput } from '../errors.js';
import { findTenant } from '../tenancy/service.js';
import { tenantCode as validTenantCode } from '../tenancy/validation.js';
import { resolveValidity, type ValidityPolicy, type ValidityRequest } from './validity.js';
import { effectiveStatus, daysLeft, type EffectiveStatus } from './status.js';

/**
 * Issuing, finding and revoking client certificates. The CPU work (key, signature, PKCS#12)
 * happens before the transaction; the transaction only records the certificate and its audit
 * event (and, for the CLI, the sealed handover: certificates/handover.ts), so a crash leaves
 * either all or nothing.
 */
export interface CertificateDeps {
  db: Db;
  clock: Clock;
  minter: Minter;
  /** SHA-256 of the issuing CA certificate, recorded with each certificate it signs. */
  issuerFingerprint: string;
  validity: ValidityPolicy;
}

export interface IssueRequest {
  tenantCode: string;
  keyType: AnyKeyType;
  profile: Pkcs12Profile;
  label?: string | undefined;
  validity: ValidityRequest;
  actor: string;
}

export interface IssueResult extends Minted {
  row: CertificateRow;
  tenant: Tenant;
}

/** What a caller adds to an issue: the CLI writes the file before the commit and seals a handover in it. */
export interface IssueHooks {
  /** After minting, before the transaction: a failure here (a full disk) registers nothing. */
  beforeCommit?(minted: Minted): void | Promise<void>;
  /** Inside the transaction that records the certificate and its audit event. */
  inTransaction?(trx: Db, row: CertificateRow, minted: Minted, now: Date): Promise<void>;
}

export async function issueCertificate(deps: CertificateDeps, req: IssueRequest, hooks: IssueHooks = {}): Promise<IssueResult> {
  const label = validateLabel(req.label);
  const tenant = await findTenant(deps.db, validTenantCode(req.tenantCode));
  const now = deps.clock.now();
  const { notBefore, notAfter } = resolveValidity(req.validity, deps.validity, now);
  const subject = buildSubject({ tenantCode: tenant.code, tenantName: tenant.name, label });
  const minted = await deps.minter.mint({
    subjectDer: new Uint8Array(subject.toArrayBuffer()),
    displayName: tenant.name,
    keyType: req.keyType,
    profile: req.profile,
    notBefore,
    notAfter,
  });
  await hooks.beforeCommit?.(minted);
  const row = await recordCertificate(deps, minted, { tenant, label, keyType: req.keyType, issuedVia: 'operator', predecessorId: null, actor: req.actor }, hooks.inTransaction);
  return { ...minted, row, tenant };
}

export interface CertificateMeta {
  tenant: Tenant;
  label: string | undefined | null;
  keyType: AnyKeyType;
  issuedVia: IssuedVia;
  predecessorId: number | null;
  actor: string;
}

/**
 * Inserts a minted certificate and its audit event inside the caller's transaction, so a renewal
 * can add its package row to the same commit.
 */
export async function insertCertificate(trx: Db, minted: Minted, meta: CertificateMeta, issuerFingerprint: string, now: Date): Promise<CertificateRow> {
  const row = await trx
    .insertInto('certificates')
    .values({
      serial: minted.serial,
      tenant_id: meta.tenant.id,
      subject: minted.subject,
      subject_der: Buffer.from(minted.subjectDer).toString('base64'),
      label: meta.label ?? null,
      key_type: meta.keyType,
      fingerprint_sha256: minted.fingerprintSha256,
      not_before: minted.notBefore.toISOString(),
      not_after: minted.notAfter.toISOString(),
      status: 'active',
      revoked_at: null,
      revocation_reason: null,
      predecessor_id: meta.predecessorId,
      issued_via: meta.issuedVia,
      issuer_fingerprint: issuerFingerprint,
      pem: minted.certificatePem,
      created_at: now.toISOString(),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  await appendAudit(trx, now, {
    actor: meta.actor,
    action: 'certificate.issued',
    tenantId: meta.tenant.id,
    target: `certificate:${row.serial}`,
    details: { serial: row.serial, notAfter: row.not_after, keyType: meta.keyType, via: meta.issuedVia, predecessor: meta.predecessorId },
  });
  return row;
}

/** Records a minted certificate and its audit event in one transaction (with the caller's rows, if any). */
export async function recordCertificate(deps: Pick<CertificateDeps, 'db' | 'clock' | 'issuerFingerprint'>, minted: Minted, meta: CertificateMeta, inTransaction?: IssueHooks['inTransaction']): Promise<CertificateRow> {
  const now = deps.clock.now();
  return deps.db.transaction().execute(async (trx) => {
    const row = await insertCertificate(trx, minted, meta, deps.issuerFingerprint, now);
    await inTransaction?.(trx, row, minted, now);
    return row;
  });
}

/**
 * Re-issue for a certificate that can no longer renew itself (expired, lost, revoked): a new key and
 * certificate with exactly the same subject, linked to it, handed over out of band by the operator.
 */
export async function reissueCertificate(
  deps: CertificateDeps,
  req: { serial: string; keyType: AnyKeyType; profile: Pkcs12Profile; validity: ValidityRequest; actor: string },
  hooks: IssueHooks = {},
): Promise<IssueResult> {
  const predecessor = await findBySerial(deps.db, req.serial);
  const tenant = await deps.db.selectFrom('tenants').selectAll().where('id', '=', predecessor.tenant_id).executeTakeFirstOrThrow();
  const { notBefore, notAfter } = resolveValidity(req.validity, deps.validity, deps.clock.now());
  const minted = await deps.minter.mint({ subjectDer: subjectDerOf(predecessor), displayName: tenant.name, keyType: req.keyType, profile: req.profile, notBefore, notAfter });
  await hooks.beforeCommit?.(minted);
  const row = await recordCertificate(deps, minted, { tenant, label: predecessor.label, keyType: req.keyType, issuedVia: 'reissue', predecessorId: predecessor.id, actor: req.actor }, hooks.inTransaction);
  return { ...minted, row, tenant };
}

/** The subject DER of an existing certificate, for a renewal or re-issue that must keep it exactly. */
export function subjectDerOf(row: CertificateRow): Uint8Array {
  return new Uint8Array(Buffer.from(row.subject_der, 'base64'));
}

export interface CertificateView {
  serial: string;
  tenantCode: string;
  tenantName: string;
  subject: string;
  label: string | null;
  keyType: string;
  fingerprintSha256: string;
  notBefore: string;
  notAfter: string;
  daysLeft: number;
  status: EffectiveStatus;
  revokedAt: string | null;
  revocationReason: string | null;
  issuedVia: IssuedVia;
  predecessorSerial: string | null;
  successorSerials: string[];
}

export interface CertificateFilter {
  tenantCode?: string | undefined;
  expiringWithinDays?: number | undefined;
  status?: EffectiveStatus | undefined;
  /**
   * What an operator types in the search box: a 機関番号 (10 digits: that institution's tenant), a
   * serial or its beginning (hex, colons allowed, as browsers show it), or a tenant code or part of a
   * tenant name.
   */
  search?: string | undefined;
}

/** Soonest expiry first; `id` breaks ties, so the order is total and a cursor is exact. */
function certificateQuery(deps: Pick<CertificateDeps, 'db' | 'clock'>, filter: CertificateFilter, tenantId: number | undefined) {
  const now = deps.clock.now();
  let q = deps.db
    .selectFrom('certificates as c')
    .innerJoin('tenants as t', 't.id', 'c.tenant_id')
    .leftJoin('certificates as p', 'p.id', 'c.predecessor_id')
    // Only what a list shows: the PEM and subject DER are most of a row's bytes, and a list of
    // tens of thousands of rows (all expiring within 90 days, say) spent most of its time reading them.
    .select(VIEW_COLUMNS.map((col) => `c.${col}` as const))
    .select(['c.id as row_id', 't.code as tenant_code', 't.name as tenant_name', 'p.serial as predecessor_serial'])
    .orderBy('c.not_after', 'asc')
    .orderBy('c.id', 'asc');
  if (tenantId !== undefined) q = q.where('c.tenant_id', '=', tenantId);
  if (filter.expiringWithinDays !== undefined) {
    const d = filter.expiringWithinDays;
    if (!Number.isInteger(d) || d < 0 || d > 3660) throw invalidInput('expiring-within', 'must be a whole number of days from 0 to 3660');
    // "Expiring within N days" means still valid now and not after now + N days; revoked ones are not expiring.
    q = q
      .where('c.not_after', '>', now.toISOString())
      .where('c.not_after', '<=', new Date(now.getTime() + d * DAY_MS).toISOString())
      .where('c.status', '=', 'active');
  }
  const nowIso = now.toISOString();
  // Expiry is derived from the dates (see status.ts), so the state filter is a date condition too.
  if (filter.status === 'revoked') q = q.where('c.status', '=', 'revoked');
  if (filter.status === 'expired') q = q.where('c.status', '=', 'active').where('c.not_after', '<=', nowIso);
  if (filter.status === 'not_yet_valid') q = q.where('c.status', '=', 'active').where('c.not_before', '>', nowIso);
  if (filter.status === 'active') q = q.where('c.status', '=', 'active').where('c.not_after', '>', nowIso).where('c.not_before', '<=', nowIso);
  const search = filter.search?.trim();
  if (search) {
    if (search.length > 128) throw invalidInput('search', 'is longer than 128 characters');
    const serial = /^[0-9a-fA-F:\s]{2,}$/.test(search) ? normaliseSerial(search) : undefined;
    const number = /^\d{10}$/.test(search) ? search : undefined;
    const text = search.replace(/[%_\\]/g, '');
    // The certificates that match, as one id list (a UNION of index lookups), joined back: an OR of
    // the conditions made PostgreSQL walk the whole expiry index filtering every row (600 ms at 1M).
    q = q.where('c.id', 'in', (eb) => {
      const byTenant = eb
        .selectFrom('certificates as ct')
        .select('ct.id')
        .where('ct.tenant_id', 'in', eb.selectFrom('tenants').select('id').where((t) => t.or([t(tenantCodeIs('code'), '=', tenantCodeKey(text)), t('name', 'like', `%${text}%`)])));
      let ids = byTenant;
      // A serial prefix as an index range on the unique serial index: [prefix, prefix with its
      // last digit + 1). Stored serials are lower-case hex without leading zeros (normaliseSerial).
      if (serial) ids = ids.union(eb.selectFrom('certificates as cs').select('cs.id').where('cs.serial', '>=', serial).where('cs.serial', '<', serial.slice(0, -1) + String.fromCharCode(serial.charCodeAt(serial.length - 1) + 1)));
      if (number) ids = ids.union(eb.selectFrom('certificates as ci').select('ci.id').where('ci.tenant_id', 'in', eb.selectFrom('institutions').select('tenant_id').where('number', '=', number)));
      return ids;
    });
  }
  return q;
}

const tenantIdOf = async (db: Db, code: string | undefined) => (code === undefined ? undefined : (await findTenant(db, validTenantCode(code))).id);

export async function listCertificates(
  deps: Pick<CertificateDeps, 'db' | 'clock'>,
  filter: CertificateFilter & {
    /** At most this many, soonest expiry first (a page); all when unset. */
    limit?: number | undefined;
  },
): Promise<CertificateView[]> {
  const now = deps.clock.now();
  let q = certificateQuery(deps, filter, await tenantIdOf(deps.db, filter.tenantCode));
  if (filter.limit !== undefined) {
    if (!Number.isInteger(filter.limit) || filter.limit < 1) throw invalidInput('limit', 'must be a whole number of at least 1');
    q = q.limit(filter.limit);
  }
  const rows = await q.execute();
  return rows.map((r) => toView(r, r.tenant_code, r.tenant_name, r.predecessor_serial, [], now));
}

export interface CertificatePage {
  rows: CertificateView[];
  /** The cursor of the next page; undefined on the last one. */
  next: string | undefined;
}

/** An opaque cursor: the last row's expiry and id (base64url), so the next page is an index range, never an OFFSET. */
const encodeCursor = (notAfter: string, id: number) => Buffer.from(`${notAfter}|${id}`).toString('base64url');
function decodeCursor(cursor: string): { notAfter: string; id: number } {
  const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\|(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m || cursor.length > 100) throw invalidInput('cursor', 'is not a cursor this list gave out');
  return { notAfter: m[1]!, id: Number(m[2]) };
}

/**
 * One page of the list, and the cursor of the next. Keyset (rows after the last one seen, in the
 * list's own order) instead of OFFSET: page 10,000 of a million certificates costs what page 1 does,
 * and certificates issued meanwhile cannot shift a page under the reader.
 */
export async function listCertificatePage(deps: Pick<CertificateDeps, 'db' | 'clock'>, filter: CertificateFilter & { cursor?: string | undefined; limit: number }): Promise<CertificatePage> {
  if (!Number.isInteger(filter.limit) || filter.limit < 1 || filter.limit > 10_000) throw invalidInput('limit', 'must be a whole number from 1 to 10000');
  const now = deps.clock.now();
  const rows = await (await certificatePageQuery(deps, filter)).execute();
  const more = rows.length > filter.limit;
  const page = more ? rows.slice(0, filter.limit) : rows;
  const last = page[page.length - 1];
  return { rows: page.map((r) => toView(r, r.tenant_code, r.tenant_name, r.predecessor_serial, [], now)), next: more && last ? encodeCursor(last.not_after, last.row_id) : undefined };
}

/** The query of one page (limit + 1 rows, to know whether there is a next): bench/database.ts EXPLAINs it. */
export async function certificatePageQuery(deps: Pick<CertificateDeps, 'db' | 'clock'>, filter: CertificateFilter & { cursor?: string | undefined; limit: number }) {
  let q = certificateQuery(deps, filter, await tenantIdOf(deps.db, filter.tenantCode)).limit(filter.limit + 1);
  if (filter.cursor) {
    const after = decodeCursor(filter.cursor);
    q = q.where((eb) => eb.or([eb('c.not_after', '>', after.notAfter), eb.and([eb('c.not_after', '=', after.notAfter), eb('c.id', '>', after.id)])]));
  }
  return q;
}

/** Every page in turn, for `kenshin cert list --all` and exports: memory stays at one page. */
export async function* certificatePages(deps: Pick<CertificateDeps, 'db' | 'clock'>, filter: CertificateFilter, pageSize = 1000): AsyncGenerator<CertificateView[]> {
  let cursor: string | undefined;
  do {
    const page = await listCertificatePage(deps, { ...filter, cursor, limit: pageSize });
    if (page.rows.length) yield page.rows;
    cursor = page.next;
  } while (cursor);
}

/**
 * This certificate's own renewal, when it has one: when it was made, when the successor was first
 * presented to the portal, and when a desktop client (monsiaj, glclient) fetched the package over
 * the API; such a client never shows the portal its new certificate, so that is all there is to see.
 */
export interface RenewalSummary {
  createdAt: string;
  takenUpAt: string | null;
  clientFetchedAt: string | null;
  clientAgent: string | null;
}

export async function getCertificate(deps: Pick<CertificateDeps, 'db' | 'clock'>, serialInput: string): Promise<CertificateView & { pem: string; renewal: RenewalSummary | null }> {
  const row = await findBySerial(deps.db, serialInput);
  const tenant = await deps.db.selectFrom('tenants').selectAll().where('id', '=', row.tenant_id).executeTakeFirstOrThrow();
  const pred = row.predecessor_id
    ? await deps.db.selectFrom('certificates').select('serial').where('id', '=', row.predecessor_id).executeTakeFirst()
    : undefined;
  const succ = await deps.db.selectFrom('certificates').select('serial').where('predecessor_id', '=', row.id).orderBy('id').execute();
  const renewal = await deps.db.selectFrom('renewals').select(['created_at', 'taken_up_at', 'client_fetched_at', 'client_agent']).where('predecessor_id', '=', row.id).executeTakeFirst();
  return {
    ...toView(row, tenant.code, tenant.name, pred?.serial ?? null, succ.map((s) => s.serial), deps.clock.now()),
    pem: row.pem,
    renewal: renewal ? { createdAt: renewal.created_at, takenUpAt: renewal.taken_up_at, clientFetchedAt: renewal.client_fetched_at, clientAgent: renewal.client_agent } : null,
  };
}

export async function findBySerial(db: Db, serialInput: string): Promise<CertificateRow> {
  const serial = normaliseSerial(serialInput);
  if (!serial) throw invalidInput('serial', `"${String(serialInput).slice(0, 64)}" is not a hexadecimal serial number`);
  const row = await db.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
  if (!row) throw new Refusal('unknown_certificate', `no certificate with serial ${serial}`, { field: 'serial' });
  return row;
}

/** RFC 5280 CRLReason names that make sense for an end-entity certificate. */
export const REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

export async function revokeCertificate(
  deps: Pick<CertificateDeps, 'db' | 'clock'>,
  req: { serial: string; reason?: string | undefined; actor: string; withSuccessors?: boolean },
): Promise<CertificateView & { alsoRevoked: string[] }> {
  const reason = (req.reason ?? 'unspecified') as RevocationReason;
  if (!REVOCATION_REASONS.includes(reason)) throw invalidInput('reason', `expected one of ${REVOCATION_REASONS.join(', ')}, got "${String(req.reason).slice(0, 40)}"`);
  const row = await findBySerial(deps.db, req.serial);
  const now = deps.clock.now();
  const alsoRevoked: string[] = [];
  await deps.db.transaction().execute(async (trx) => {
    // Conditional update: two operators revoking at once cannot both "succeed" or overwrite the reason.
    if (!(await revokeOne(trx, row, reason, now, req.actor))) {
      throw new Refusal('certificate_already_revoked', `certificate ${row.serial} is already revoked`, { field: 'serial' });
    }
    // A compromised PC may already hold the renewal: "and every successor" revokes the whole line.
    let frontier = [row.id];
    while (req.withSuccessors && frontier.length) {
      const next = await trx.selectFrom('certificates').selectAll().where('predecessor_id', 'in', frontier).execute();
      for (const s of next) if (await revokeOne(trx, s, reason, now, req.actor)) alsoRevoked.push(s.serial);
      frontier = next.map((s) => s.id);
    }
  });
  // Their sessions are gone, their rows changed: after the commit, so no check in between can cache them again.
  sessionsChanged();
  certificatesChanged();
  return { ...(await getCertificate(deps, row.serial)), alsoRevoked };
}

async function revokeOne(trx: Db, row: CertificateRow, reason: RevocationReason, now: Date, actor: string): Promise<boolean> {
  const res = await trx
    .updateTable('certificates')
    .set({ status: 'revoked', revoked_at: now.toISOString(), revocation_reason: reason })
    .where('id', '=', row.id)
    .where('status', '=', 'active')
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) return false;
  // Revocation takes effect at once: the sessions opened with this certificate end with it.
  await trx.deleteFrom('sessions').where('certificate_id', '=', row.id).execute();
  await appendAudit(trx, now, { actor, action: 'certificate.revoked', tenantId: row.tenant_id, target: `certificate:${row.serial}`, details: { serial: row.serial, reason } });
  return true;
}

/** The columns a CertificateView is made of. */
const VIEW_COLUMNS = ['serial', 'subject', 'label', 'key_type', 'fingerprint_sha256', 'not_before', 'not_after', 'status', 'revoked_at', 'revocation_reason', 'issued_via'] as const;

function toView(r: Pick<CertificateRow, (typeof VIEW_COLUMNS)[number]>, tenantCode: string, tenantName: string, predecessorSerial: string | null, successorSerials: string[], now: Date): CertificateView {
  return {
    serial: r.serial,
    tenantCode,
    tenantName,
    subject: r.subject,
    label: r.label,
    keyType: r.key_type,
    fingerprintSha256: r.fingerprint_sha256,
    notBefore: r.not_before,
    notAfter: r.not_after,
    daysLeft: daysLeft(r.not_after, now),
    status: effectiveStatus(r, now),
    revokedAt: r.revoked_at,
    revocationReason: r.revocation_reason,
    issuedVia: r.issued_via,
    predecessorSerial,
    successorSerials,
  };
}
