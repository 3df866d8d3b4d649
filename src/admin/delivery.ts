import { randomBytes } from 'node:crypto';
import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import { DAY_MS } from '../clock.js';
import type { PackageVault } from '../renewal/package-vault.js';
import { appendAudit } from '../audit/log.js';
import { Refusal } from '../errors.js';
import type { CertificateRow } from '../db/schema.js';
import type { Minted } from '../ca/mint.js';

/**
 * Out-of-band delivery of a certificate an operator issued: the .p12 can be downloaded once by
 * that operator (within a day), the password is shown once on the issue page and never stored.
 * Called inside the issuing transaction (IssueHooks.inTransaction): a crash between two commits
 * would otherwise leave a registered certificate with no file to download.
 */
export async function holdForDelivery(trx: Db, vault: PackageVault, row: CertificateRow, minted: Pick<Minted, 'pkcs12'>, now: Date, operator: { id: number }): Promise<string> {
  const downloadId = randomBytes(24).toString('base64url');
  await trx
    .insertInto('deliveries')
    .values({
      download_id: downloadId,
      certificate_id: row.id,
      operator_user_id: operator.id,
      // The vault format carries a password field; it is left empty here on purpose.
      package_sealed: vault.seal({ password: '', pkcs12: { compatible: minted.pkcs12 } }),
      expires_at: new Date(now.getTime() + DAY_MS).toISOString(),
      downloaded_at: null,
    })
    .execute();
  return downloadId;
}

export async function takeDelivery(deps: { db: Db; clock: Clock; vault: PackageVault }, downloadId: string, operator: { id: number; loginId: string }): Promise<{ file: Uint8Array; filename: string }> {
  const now = deps.clock.now();
  return deps.db.transaction().execute(async (trx) => {
    const d = await trx.selectFrom('deliveries').selectAll().where('download_id', '=', downloadId).where('operator_user_id', '=', operator.id).executeTakeFirst();
    if (!d) throw new Refusal('unknown_renewal', 'no such delivery');
    // Claim the one download before reading: a second click gets a clear refusal, not a second copy.
    const res = await trx.updateTable('deliveries').set({ package_sealed: null, downloaded_at: now.toISOString() }).where('id', '=', d.id).where('package_sealed', 'is not', null).where('expires_at', '>', now.toISOString()).executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1 || !d.package_sealed) throw new Refusal('package_expired', 'this certificate file was already downloaded (or a day has passed); re-issue it if it was lost');
    const cert = await trx.selectFrom('certificates as c').innerJoin('tenants as t', 't.id', 'c.tenant_id').select(['c.serial', 'c.tenant_id', 't.code']).where('c.id', '=', d.certificate_id).executeTakeFirstOrThrow();
    await appendAudit(trx, now, { actor: `operator:${operator.loginId}`, action: 'package.downloaded', tenantId: cert.tenant_id, target: `certificate:${cert.serial}`, details: { serial: cert.serial, via: 'console' } });
    const file = deps.vault.open(d.package_sealed).pkcs12.compatible!;
    return { file, filename: `${cert.code}_${cert.serial.slice(0, 8)}.p12` };
  });
}
