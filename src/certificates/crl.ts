import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import type { IssuingAuthority } from '../ca/authority.js';
import { x509 } from '../ca/x509.js';
import { DAY_MS } from '../clock.js';
import { pemEncode } from '../ca/pem.js';
import { REVOCATION_REASONS, type RevocationReason } from './service.js';

/**
 * The certificate revocation list of one CA (each issuing generation has its own, and so does the
 * root: see crl-set.ts), for reverse proxies (nginx `ssl_crl`) and third
 * parties. Kenshin itself checks revocation in its database on every request; the CRL is how the
 * rest of the world learns it. Regenerated after every revocation and whenever it is older than a
 * day; nextUpdate is two days out so a missed run does not make relying parties reject everyone.
 */
export const CRL_VALIDITY_MS = 2 * DAY_MS;
const REFRESH_AFTER_MS = DAY_MS;

export interface CrlDeps {
  db: Db;
  clock: Clock;
  /** The CA whose CRL this is: an issuing CA of any generation, or the root (ca/root-authority.ts). */
  authority: Pick<IssuingAuthority, 'issuingFingerprint' | 'signCrl'>;
  /** nextUpdate − thisUpdate; CRL_VALIDITY_MS unless given (the root's is longer, see crl-set.ts). */
  validityMs?: number;
}

const REASON_CODES: Record<RevocationReason, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
  privilegeWithdrawn: x509.X509CrlReason.privilegeWithdrawn,
};

export interface PublishedCrl {
  number: number;
  thisUpdate: string;
  nextUpdate: string;
  der: Uint8Array;
  pem: string;
}

/** Signs and stores a new CRL with the next number. The row lock / write lock serialises numbering. */
export async function publishCrl(deps: CrlDeps): Promise<PublishedCrl> {
  const issuer = await deps.authority.issuingFingerprint();
  const now = deps.clock.now();
  const nextUpdate = new Date(now.getTime() + (deps.validityMs ?? CRL_VALIDITY_MS));
  return deps.db.transaction().execute(async (trx) => {
    // Make sure the row exists first: two instances publishing their first CRL at the same start
    // would otherwise both find no row and both insert, and the loser's start-up would fail on the
    // primary key. ON CONFLICT DO NOTHING waits for the other insert and then leaves its row alone.
    await trx
      .insertInto('crls')
      .values({ issuer_fingerprint: issuer, number: 0, this_update: now.toISOString(), next_update: nextUpdate.toISOString(), der: '' })
      .onConflict((oc) => oc.column('issuer_fingerprint').doNothing())
      .execute();
    // Claim the next number (a write, so a row lock): concurrent publishers get distinct numbers.
    const { number } = await trx.updateTable('crls').set((eb) => ({ number: eb('number', '+', 1) })).where('issuer_fingerprint', '=', issuer).returning('number').executeTakeFirstOrThrow();
    const revoked = await trx
      .selectFrom('certificates')
      .select(['serial', 'revoked_at', 'revocation_reason'])
      .where('issuer_fingerprint', '=', issuer)
      .where('status', '=', 'revoked')
      .orderBy('revoked_at')
      .execute();
    const der = await deps.authority.signCrl({
      number,
      thisUpdate: now,
      nextUpdate,
      entries: revoked.map((r) => ({
        serial: r.serial,
        revokedAt: new Date(r.revoked_at ?? now),
        reason: REASON_CODES[(REVOCATION_REASONS as readonly string[]).includes(r.revocation_reason ?? '') ? (r.revocation_reason as RevocationReason) : 'unspecified'],
      })),
    });
    await trx
      .updateTable('crls')
      .set({ this_update: now.toISOString(), next_update: nextUpdate.toISOString(), revoked_count: revoked.length, der: Buffer.from(der).toString('base64') })
      .where('issuer_fingerprint', '=', issuer)
      .execute();
    return { number, thisUpdate: now.toISOString(), nextUpdate: nextUpdate.toISOString(), der, pem: pemEncode(der, 'X509 CRL') };
  });
}

/**
 * Whether the stored CRL of this CA can still be served: it exists, is less than a day old, and
 * lists every revocation (revocation is one-way, so a different count means one it does not list
 * yet). Reads the row's dates and counts, never its bytes (4.9 MB at 100,000 entries).
 */
async function storedIfCurrent(deps: CrlDeps, issuer: string): Promise<{ number: number } | undefined> {
  // octet_length, not the column: both databases know a value's size without reading it.
  const row = await deps.db
    .selectFrom('crls')
    .select(['number', 'this_update', 'revoked_count', sql<number>`octet_length(der)`.as('bytes')])
    .where('issuer_fingerprint', '=', issuer)
    .executeTakeFirst();
  // A row without bytes was never signed here (an adopted CA's, holding the old system's last number).
  if (!row || Number(row.bytes) === 0) return undefined;
  const revoked = await deps.db.selectFrom('certificates').select((eb) => eb.fn.countAll<number>().as('n')).where('issuer_fingerprint', '=', issuer).where('status', '=', 'revoked').executeTakeFirstOrThrow();
  const stale = deps.clock.now().getTime() - new Date(row.this_update).getTime() > REFRESH_AFTER_MS || Number(revoked.n) !== row.revoked_count;
  return stale ? undefined : { number: row.number };
}

/**
 * The number of the CRL that currentCrl would return, when that is the stored one; undefined when
 * currentCrl would publish a new one. What a server keeping the bytes in memory asks now and then.
 */
export async function currentCrlNumber(deps: CrlDeps): Promise<number | undefined> {
  return (await storedIfCurrent(deps, await deps.authority.issuingFingerprint()))?.number;
}

/** The current CRL, regenerated first when it is missing, a day old, or older than a revocation. */
export async function currentCrl(deps: CrlDeps): Promise<PublishedCrl> {
  const issuer = await deps.authority.issuingFingerprint();
  if (await storedIfCurrent(deps, issuer)) {
    const row = await deps.db.selectFrom('crls').select(['number', 'this_update', 'next_update', 'der']).where('issuer_fingerprint', '=', issuer).executeTakeFirst();
    // Published anew between the two reads (another process): that one is current too.
    if (row && row.der) {
      const der = new Uint8Array(Buffer.from(row.der, 'base64'));
      return { number: row.number, thisUpdate: row.this_update, nextUpdate: row.next_update, der, pem: pemEncode(der, 'X509 CRL') };
    }
  }
  return publishCrl(deps);
}
