import { randomBytes } from 'node:crypto';
import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/database.js';
import type { CertificateRow, Renewal, Tenant } from '../db/schema.js';
import type { Clock } from '../clock.js';
import { DAY_MS } from '../clock.js';
import type { Minter } from '../ca/mint.js';
import type { AnyKeyType } from '../ca/keys.js';
import type { Pkcs12Profile } from '../ca/pkcs12.js';
import { formatDateJst } from '../ca/friendly-name.js';
import { appendAudit } from '../audit/log.js';
import { Refusal } from '../errors.js';
import { resolveValidity, type ValidityPolicy } from '../certificates/validity.js';
import { insertCertificate, subjectDerOf } from '../certificates/service.js';
import { renewalStatus, type RenewalStatus } from './policy.js';
import type { PackageContents, PackageVault } from './package-vault.js';

/**
 * Self-renewal: a certificate's one successor and the package that delivers it. The successor and
 * its sealed package are written in one transaction guarded by unique constraints, so concurrent
 * starts (double click, two tabs, two instances, a retry after a crash) all end with the same
 * successor and the same package.
 */
export interface RenewalDeps {
  db: Db;
  clock: Clock;
  minter: Minter;
  issuerFingerprint: string;
  validity: ValidityPolicy;
  vault: PackageVault;
  windowDays: number;
  /** Why keep the package at all: a download that fails (proxy, closed laptop) can be repeated. */
  packageDays: number;
}

/** The delivered file is compatible (imports everywhere); modern is offered beside it. */
const PRIMARY: Pkcs12Profile = 'compatible';
const ALTERNATIVE: Pkcs12Profile = 'modern';

export interface RenewalInfo {
  status: RenewalStatus;
  renewal: Renewal | undefined;
  successor: CertificateRow | undefined;
}

export async function renewalInfo(deps: Pick<RenewalDeps, 'db' | 'clock' | 'windowDays'>, cert: CertificateRow): Promise<RenewalInfo> {
  const renewal = await deps.db.selectFrom('renewals').selectAll().where('predecessor_id', '=', cert.id).executeTakeFirst();
  const successor = renewal ? await deps.db.selectFrom('certificates').selectAll().where('id', '=', renewal.successor_id).executeTakeFirst() : undefined;
  return { status: renewalStatus(cert, renewal !== undefined, deps.clock.now(), deps.windowDays), renewal, successor };
}

/** A renewal seen from either of its two certificates: which one the requester presents. */
export interface RenewalPair {
  renewal: Renewal;
  old: CertificateRow;
  new: CertificateRow;
  presenting: 'old' | 'new';
}

/** The renewal `cert` is part of (as the predecessor or the successor), with both certificates. */
export async function renewalPairOf(db: Db, cert: CertificateRow): Promise<RenewalPair | undefined> {
  const renewal = await db
    .selectFrom('renewals')
    .selectAll()
    .where((eb) => eb.or([eb('predecessor_id', '=', cert.id), eb('successor_id', '=', cert.id)]))
    // A successor may itself have been renewed: its own renewal (as predecessor) is the current one.
    .orderBy('id', 'desc')
    .executeTakeFirst();
  if (!renewal) return undefined;
  const presenting = renewal.predecessor_id === cert.id ? 'old' : 'new';
  const otherId = presenting === 'old' ? renewal.successor_id : renewal.predecessor_id;
  const other = await db.selectFrom('certificates').selectAll().where('id', '=', otherId).executeTakeFirstOrThrow();
  return presenting === 'old' ? { renewal, old: cert, new: other, presenting } : { renewal, old: other, new: cert, presenting };
}

export interface StartedRenewal {
  /** false when the renewal already existed: the same successor and package are returned. */
  created: boolean;
  renewal: Renewal;
  successor: CertificateRow;
  password: string;
}

const refusalFor = {
  certificate_expired: (c: CertificateRow) => new Refusal('certificate_expired', `certificate ${c.serial} has expired; the operator must issue a new one`),
  certificate_revoked: (c: CertificateRow) => new Refusal('certificate_revoked', `certificate ${c.serial} is revoked`),
  certificate_not_yet_valid: (c: CertificateRow) => new Refusal('certificate_not_yet_valid', `certificate ${c.serial} is not valid yet`),
  not_in_window: (c: CertificateRow, s: RenewalStatus) =>
    new Refusal('not_in_window', `certificate ${c.serial} can be renewed from ${s.windowStart.toISOString()}`, { details: { windowStart: s.windowStart.toISOString(), daysLeft: s.daysLeft } }),
};

/**
 * Renewals being minted in this process, per predecessor. A double click, a retrying client or a
 * deliberate flood of requests for one certificate joins the mint in flight instead of minting (and
 * throwing away) a key each: the unique constraints still decide between processes.
 */
const inFlight = new WeakMap<RenewalDeps, Map<number, Promise<StartedRenewal>>>();

export function startRenewal(deps: RenewalDeps, predecessor: CertificateRow, actor: string): Promise<StartedRenewal> {
  let flights = inFlight.get(deps);
  if (!flights) inFlight.set(deps, (flights = new Map()));
  const running = flights.get(predecessor.id);
  if (running) return running.then((r) => ({ ...r, created: false }));
  const started = startRenewalOnce(deps, predecessor, actor).finally(() => flights.delete(predecessor.id));
  flights.set(predecessor.id, started);
  return started;
}

async function startRenewalOnce(deps: RenewalDeps, predecessor: CertificateRow, actor: string): Promise<StartedRenewal> {
  const existing = await existingRenewal(deps, predecessor);
  if (existing) return existing;
  const now = deps.clock.now();
  const status = renewalStatus(predecessor, false, now, deps.windowDays);
  if (status.reason && status.reason !== 'already_renewed') throw refusalFor[status.reason](predecessor, status);

  const tenant = await deps.db.selectFrom('tenants').selectAll().where('id', '=', predecessor.tenant_id).executeTakeFirstOrThrow();
  // Recorded on its own, before the work: a start that never completes still leaves a trace.
  await deps.db.transaction().execute((trx) => appendAudit(trx, now, { actor, action: 'renewal.started', tenantId: tenant.id, target: `certificate:${predecessor.serial}`, details: { predecessor: predecessor.serial } }));
  const { notBefore, notAfter } = resolveValidity({ kind: 'default' }, deps.validity, now);
  const minted = await deps.minter.mint({
    subjectDer: subjectDerOf(predecessor), // the exact bytes: users see "the same name"
    displayName: tenant.name,
    keyType: predecessor.key_type as AnyKeyType,
    profile: PRIMARY,
    alternativeProfiles: [ALTERNATIVE],
    notBefore,
    notAfter,
  });
  const contents: PackageContents = { password: minted.password, pkcs12: { [PRIMARY]: minted.pkcs12 } };
  for (const a of minted.alternatives) contents.pkcs12[a.profile] = a.pkcs12;
  const sealed = deps.vault.seal(contents);

  try {
    return await deps.db.transaction().execute(async (trx) => {
      const successor = await insertCertificate(
        trx,
        minted,
        { tenant, label: predecessor.label, keyType: predecessor.key_type as AnyKeyType, issuedVia: 'renewal', predecessorId: predecessor.id, actor },
        deps.issuerFingerprint,
        now,
      );
      const renewal = await trx
        .insertInto('renewals')
        .values({
          predecessor_id: predecessor.id,
          successor_id: successor.id,
          download_id: randomBytes(24).toString('base64url'),
          package_sealed: sealed,
          package_expires_at: new Date(now.getTime() + deps.packageDays * DAY_MS).toISOString(),
          created_at: now.toISOString(),
          taken_up_at: null,
          wiped_at: null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      await appendAudit(trx, now, {
        actor,
        action: 'renewal.issued',
        tenantId: tenant.id,
        target: `certificate:${predecessor.serial}`,
        details: { predecessor: predecessor.serial, successor: successor.serial, notAfter: successor.not_after },
      });
      return { created: true, renewal, successor, password: minted.password };
    });
  } catch (e) {
    // Someone else's start won the race: theirs is the renewal. Ours was never recorded.
    if (isUniqueViolation(e)) {
      const winner = await existingRenewal(deps, predecessor);
      if (winner) return winner;
    }
    throw e;
  }
}

async function existingRenewal(deps: RenewalDeps, predecessor: CertificateRow): Promise<StartedRenewal | undefined> {
  const renewal = await deps.db.selectFrom('renewals').selectAll().where('predecessor_id', '=', predecessor.id).executeTakeFirst();
  if (!renewal) return undefined;
  const successor = await deps.db.selectFrom('certificates').selectAll().where('id', '=', renewal.successor_id).executeTakeFirstOrThrow();
  const contents = openSealed(deps, renewal);
  return { created: false, renewal, successor, password: contents.password };
}

function openSealed(deps: Pick<RenewalDeps, 'vault' | 'clock'>, renewal: Renewal): PackageContents {
  if (!renewal.package_sealed || new Date(renewal.package_expires_at) <= deps.clock.now()) {
    throw new Refusal('package_expired', 'the renewal package is no longer available; the new certificate was issued, ask the operator to re-issue it', {
      details: { expiredAt: renewal.package_expires_at },
    });
  }
  return deps.vault.open(renewal.package_sealed);
}

export interface OpenedPackage {
  renewal: Renewal;
  successor: CertificateRow;
  tenant: Tenant;
  contents: PackageContents;
  /** `<tenant code>_<yyyymmdd>.p12`, the date of issue in Japan time. */
  filename: string;
}

/**
 * The package of a renewal, for a requester presenting either the predecessor or the successor
 * certificate: nobody else may download it, even with the (unguessable) id.
 */
export async function openPackage(deps: Pick<RenewalDeps, 'db' | 'clock' | 'vault'>, by: { downloadId?: string; renewalId?: number }, requester: CertificateRow): Promise<OpenedPackage> {
  let q = deps.db.selectFrom('renewals').selectAll();
  if (by.downloadId !== undefined) q = q.where('download_id', '=', by.downloadId);
  else q = q.where('id', '=', by.renewalId ?? -1);
  const renewal = await q.executeTakeFirst();
  if (!renewal) throw new Refusal('unknown_renewal', 'no such renewal package');
  if (renewal.predecessor_id !== requester.id && renewal.successor_id !== requester.id) {
    throw new Refusal('not_your_package', 'this renewal package belongs to another certificate');
  }
  const successor = await deps.db.selectFrom('certificates').selectAll().where('id', '=', renewal.successor_id).executeTakeFirstOrThrow();
  const tenant = await deps.db.selectFrom('tenants').selectAll().where('id', '=', successor.tenant_id).executeTakeFirstOrThrow();
  const contents = openSealed(deps, renewal);
  const filename = `${tenant.code}_${formatDateJst(new Date(successor.created_at)).replace(/-/g, '')}.p12`;
  return { renewal, successor, tenant, contents, filename };
}

/** Downloads and password reveals are audited: they hand out a working credential. */
export async function recordPackageAccess(
  deps: Pick<RenewalDeps, 'db' | 'clock'>,
  opened: OpenedPackage,
  action: 'package.downloaded' | 'package.password_revealed',
  actor: string,
  details: Record<string, unknown> = {},
  also: {
    /** The session (by id hash) that revealed the password: its save screen shows it from now on. */
    revealedBySession?: string;
    /** A desktop client's User-Agent: the first such fetch is kept on the renewal. */
    clientAgent?: string;
  } = {},
): Promise<void> {
  const now = deps.clock.now();
  // The audit row and the state it explains are written together, or neither is.
  await deps.db.transaction().execute(async (trx) => {
    if (also.revealedBySession !== undefined) {
      await trx.updateTable('sessions').set({ revealed_renewal_id: opened.renewal.id }).where('id_hash', '=', also.revealedBySession).execute();
    }
    if (also.clientAgent !== undefined) {
      await trx
        .updateTable('renewals')
        .set({ client_fetched_at: now.toISOString(), client_agent: also.clientAgent })
        .where('id', '=', opened.renewal.id)
        .where('client_fetched_at', 'is', null)
        .execute();
    }
    await appendAudit(trx, now, { actor, action, tenantId: opened.tenant.id, target: `certificate:${opened.successor.serial}`, details: { successor: opened.successor.serial, ...details } });
  });
}

/**
 * What a User-Agent header says about a desktop client, fit to show an operator: printable ASCII,
 * at most 80 characters, "unknown" when absent (monsiaj's Java sends "Java/17.0.x"; curl its name).
 */
export function clientAgentLabel(userAgent: string | undefined): string {
  const printable = (userAgent ?? '').replace(/[^\x20-\x7e]/g, '').trim().slice(0, 80);
  return printable || 'unknown';
}

/**
 * Successors (by id, per database) whose renewal is known to be taken up. Taking up is one-way, so
 * remembering it is never wrong, and it spares every later request with a renewed certificate a
 * write transaction. Bounded: forgetting one only costs one more UPDATE that changes nothing.
 */
const knownTakenUp = new WeakMap<Db, Set<number>>();
const KNOWN_TAKEN_UP_MAX = 10_000;

function rememberTakenUp(db: Db, certificateId: number): void {
  let known = knownTakenUp.get(db);
  if (!known) knownTakenUp.set(db, (known = new Set()));
  if (known.size >= KNOWN_TAKEN_UP_MAX) known.delete(known.values().next().value!);
  known.add(certificateId);
}

/** This process already knows the successor's renewal is taken up (no write would change anything). */
export const isKnownTakenUp = (db: Db, certificateId: number): boolean => knownTakenUp.get(db)?.has(certificateId) === true;

/** The first request that presents a successor marks its renewal taken up. Returns true that once. */
export async function markTakenUp(deps: Pick<RenewalDeps, 'db' | 'clock'>, cert: CertificateRow, actor: string): Promise<boolean> {
  if (cert.issued_via !== 'renewal') return false;
  if (knownTakenUp.get(deps.db)?.has(cert.id)) return false;
  // Usually it already is: one read instead of a write transaction (three round trips on PostgreSQL).
  const renewal = await deps.db.selectFrom('renewals').select('taken_up_at').where('successor_id', '=', cert.id).executeTakeFirst();
  if (!renewal || renewal.taken_up_at !== null) {
    if (renewal) rememberTakenUp(deps.db, cert.id);
    return false;
  }
  const now = deps.clock.now();
  const marked = await deps.db.transaction().execute(async (trx) => {
    const res = await trx.updateTable('renewals').set({ taken_up_at: now.toISOString() }).where('successor_id', '=', cert.id).where('taken_up_at', 'is', null).executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return false;
    await appendAudit(trx, now, { actor, action: 'renewal.taken_up', tenantId: cert.tenant_id, target: `certificate:${cert.serial}`, details: { successor: cert.serial } });
    return true;
  });
  // Either way the renewal is taken up now (by this request or an earlier one).
  rememberTakenUp(deps.db, cert.id);
  return marked;
}

/** Wipes packages past their lifetime (run at start and hourly by `serve`). Returns how many. */
export async function wipeExpiredPackages(deps: Pick<RenewalDeps, 'db' | 'clock'>): Promise<number> {
  const now = deps.clock.now().toISOString();
  const due = await deps.db.selectFrom('renewals').select(['id', 'successor_id']).where('package_sealed', 'is not', null).where('package_expires_at', '<=', now).execute();
  let wiped = 0;
  for (const r of due) {
    await deps.db.transaction().execute(async (trx) => {
      const res = await trx.updateTable('renewals').set({ package_sealed: null, wiped_at: now }).where('id', '=', r.id).where('package_sealed', 'is not', null).executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) return;
      const succ = await trx.selectFrom('certificates').select(['serial', 'tenant_id']).where('id', '=', r.successor_id).executeTakeFirstOrThrow();
      await appendAudit(trx, new Date(now), { actor: 'system', action: 'package.wiped', tenantId: succ.tenant_id, target: `certificate:${succ.serial}`, details: { successor: succ.serial } });
      wiped++;
    });
  }
  return wiped;
}
