import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import type { CertificateRow } from '../db/schema.js';
import type { Minted } from '../ca/mint.js';
import type { Pkcs12Profile } from '../ca/pkcs12.js';
import type { PackageVault } from '../renewal/package-vault.js';
import { appendAudit } from '../audit/log.js';
import { Refusal } from '../errors.js';
import { findBySerial } from './service.js';

/**
 * The handover of a certificate `kenshin cert issue` registered: its .p12 and password are sealed
 * in the package vault (the key lives apart from the database, as for renewal packages) inside the
 * issuing transaction, and wiped once the command has put the file in place and printed the
 * password. A crash (kill -9, power cut) between the commit and the print therefore never leaves a
 * registered certificate whose file or password nobody has: `kenshin cert recover SERIAL --out FILE`
 * writes the file again and prints the password. The seal lasts seconds in the normal case.
 */
export interface HandoverDeps {
  db: Db;
  clock: Clock;
  vault: PackageVault;
}

/** Seals the file and password with the certificate's row: call inside the issuing transaction. */
export async function holdHandover(trx: Db, vault: PackageVault, row: CertificateRow, minted: Minted, profile: Pkcs12Profile, outputFile: string, now: Date): Promise<void> {
  await trx
    .insertInto('handovers')
    .values({
      certificate_id: row.id,
      output_file: outputFile,
      package_sealed: vault.seal({ password: minted.password, pkcs12: { [profile]: minted.pkcs12 } }),
      created_at: now.toISOString(),
      handed_over_at: null,
    })
    .execute();
}

/**
 * The file and password were written and printed: wipe the seal (audited). `action` says how:
 * `certificate.handed_over` by `cert issue`, `certificate.recovered` by `cert recover`.
 * Idempotent: a second call (a recovery of a handover that completed meanwhile) changes nothing.
 */
export async function completeHandover(deps: Pick<HandoverDeps, 'db' | 'clock'>, row: Pick<CertificateRow, 'id' | 'serial' | 'tenant_id'>, file: string, actor: string, action: 'certificate.handed_over' | 'certificate.recovered'): Promise<void> {
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const res = await trx.updateTable('handovers').set({ package_sealed: null, handed_over_at: now.toISOString() }).where('certificate_id', '=', row.id).where('package_sealed', 'is not', null).executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return;
    await appendAudit(trx, now, { actor, action, tenantId: row.tenant_id, target: `certificate:${row.serial}`, details: { serial: row.serial, file, via: 'cli' } });
  });
}

export interface PendingHandover {
  serial: string;
  tenantCode: string;
  outputFile: string;
  createdAt: string;
}

/** Certificates registered by a `cert issue` that did not get to print their password (crashed, or still running). */
export async function pendingHandovers(db: Db): Promise<PendingHandover[]> {
  const rows = await db
    .selectFrom('handovers as h')
    .innerJoin('certificates as c', 'c.id', 'h.certificate_id')
    .innerJoin('tenants as t', 't.id', 'c.tenant_id')
    .select(['c.serial', 't.code', 'h.output_file', 'h.created_at'])
    .where('h.package_sealed', 'is not', null)
    .orderBy('h.id')
    .execute();
  return rows.map((r) => ({ serial: r.serial, tenantCode: r.code, outputFile: r.output_file, createdAt: r.created_at }));
}

/** Opens the seal of a pending handover; the caller writes the file and prints the password, then completes it. */
export async function openHandover(deps: HandoverDeps, serialInput: string): Promise<{ row: CertificateRow; password: string; pkcs12: Uint8Array; outputFile: string }> {
  const row = await findBySerial(deps.db, serialInput);
  const h = await deps.db.selectFrom('handovers').selectAll().where('certificate_id', '=', row.id).executeTakeFirst();
  if (!h?.package_sealed) {
    const when = h?.handed_over_at ? ` (its file and password were handed over at ${h.handed_over_at})` : ' (it was not issued by `kenshin cert issue` with a handover)';
    throw new Refusal('nothing_to_recover', `certificate ${row.serial} has nothing to recover${when}; if they are lost, re-issue it: kenshin cert issue --reissue ${row.serial} --out FILE.p12`, { field: 'serial' });
  }
  let contents;
  try {
    contents = deps.vault.open(h.package_sealed);
  } catch {
    throw new Refusal('nothing_to_recover', `the handover of certificate ${row.serial} does not open with this package key (KENSHIN_PACKAGE_KEY or secrets/package-key changed?)`, { field: 'KENSHIN_PACKAGE_KEY' });
  }
  const pkcs12 = contents.pkcs12.compatible ?? contents.pkcs12.modern;
  if (!pkcs12) throw new Error(`the handover of certificate ${row.serial} holds no .p12`);
  return { row, password: contents.password, pkcs12, outputFile: h.output_file };
}
