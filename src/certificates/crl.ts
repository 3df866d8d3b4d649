import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import type { IssuingAuthority } from '../ca/authority.js';
import { x509 } from '../ca/x509.js';
import { DAY_MS } from '../clock.js';
import { pemEncode } from '../ca/pem.js';
import { encodeRevocations } from '../ca/crl-signer.js';
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

type RevokedEntry = { serial: string; revokedAt: Date; reason: x509.X509CrlReason };

/** Rows per query of the revoked list, with a turn of the event loop between two (see revokedEntries). */
const PAGE = 10_000;

const reasonCode = (r: string | null) => REASON_CODES[(REVOCATION_REASONS as readonly string[]).includes(r ?? '') ? (r as RevocationReason) : 'unspecified'];

/**
 * The CA's revoked certificates in revocation order (revoked_at, then serial: the partial index
 * certificates_revoked). `paged`: a page at a time, keyset by (revoked_at, serial) as a row value
 * (a range of the index on both databases), with a turn of the event loop between pages — at
 * 100,000 entries the list was one query of ~100 ms and then ~200 ms of encoding while nothing
 * else in the process ran; a row without a date (none is written so, but the column allows it)
 * comes from a query of its own, dated `undated`. Unpaged: one statement, so one snapshot.
 */
async function revokedEntries(db: Db, issuer: string, undated: Date, paged: boolean): Promise<RevokedEntry[]> {
  const revoked = () => db.selectFrom('certificates').select(['serial', 'revoked_at', 'revocation_reason']).where('issuer_fingerprint', '=', issuer).where('status', '=', 'revoked');
  const toEntry = (r: { serial: string; revoked_at: string | null; revocation_reason: string | null }): RevokedEntry => ({ serial: r.serial, revokedAt: new Date(r.revoked_at ?? undated), reason: reasonCode(r.revocation_reason) });
  if (!paged) return (await revoked().orderBy('revoked_at').orderBy('serial').execute()).map(toEntry);
  const out = (await revoked().where('revoked_at', 'is', null).orderBy('serial').execute()).map(toEntry);
  let after: [string, string] | undefined;
  for (;;) {
    let q = revoked().where('revoked_at', 'is not', null);
    if (after) {
      const [revokedAt, serial] = after;
      q = q.where((eb) => eb(eb.refTuple('revoked_at', 'serial'), '>', eb.tuple(revokedAt, serial)));
    }
    const rows = await q.orderBy('revoked_at').orderBy('serial').limit(PAGE).execute();
    for (const r of rows) out.push(toEntry(r));
    if (rows.length < PAGE) return out;
    const last = rows[rows.length - 1]!;
    after = [last.revoked_at!, last.serial];
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Thrown inside the publishing transaction to roll it back (its number unclaimed) and read again. */
class ListChanged extends Error {}

/** Reads of the list outside the transaction before one is made under its lock. */
const READS_OUTSIDE = 3;

/**
 * Signs and stores a new CRL with the next number. The row lock / write lock serialises numbering.
 * The list is read and encoded before the transaction: on SQLite the process has one connection,
 * and every other query (and, through busy_timeout, every other process's write) waited for as
 * long as the transaction was open. Inside, the count of revoked certificates says whether the
 * list is still whole: a revocation is never undone, its row never deleted, and its date and
 * reason never rewritten (service.ts and the takeover import only ever revoke rows that are
 * active), so an equal count is the same list — storedIfCurrent has relied on that since the
 * start. A revocation that landed in between rolls the transaction back and the list is read
 * again; after READS_OUTSIDE tries (a burst of revocations) it is read in one statement under the
 * lock. thisUpdate is taken under the lock, after the number, never earlier than the stored one's:
 * a higher number never carries an older date.
 */
export async function publishCrl(deps: CrlDeps): Promise<PublishedCrl> {
  const issuer = await deps.authority.issuingFingerprint();
  const validity = deps.validityMs ?? CRL_VALIDITY_MS;
  for (let attempt = 1; ; attempt++) {
    const listed = await encodeRevocations(await revokedEntries(deps.db, issuer, deps.clock.now(), true));
    try {
      const published = await deps.db.transaction().execute(async (trx) => {
        // Make sure the row exists first: two instances publishing their first CRL at the same start
        // would otherwise both find no row and both insert, and the loser's start-up would fail on the
        // primary key. ON CONFLICT DO NOTHING waits for the other insert and then leaves its row alone.
        const early = deps.clock.now();
        await trx
          .insertInto('crls')
          .values({ issuer_fingerprint: issuer, number: 0, this_update: early.toISOString(), next_update: new Date(early.getTime() + validity).toISOString(), der: '' })
          .onConflict((oc) => oc.column('issuer_fingerprint').doNothing())
          .execute();
        // Claim the next number (a write, so a row lock): concurrent publishers get distinct numbers.
        const claimed = await trx
          .updateTable('crls')
          .set((eb) => ({ number: eb('number', '+', 1) }))
          .where('issuer_fingerprint', '=', issuer)
          .returning(['number', 'this_update'])
          .executeTakeFirstOrThrow();
        const { n } = await trx.selectFrom('certificates').select((eb) => eb.fn.countAll<number>().as('n')).where('issuer_fingerprint', '=', issuer).where('status', '=', 'revoked').executeTakeFirstOrThrow();
        let entries = listed;
        if (Number(n) !== listed.count) {
          if (attempt < READS_OUTSIDE) throw new ListChanged();
          entries = await encodeRevocations(await revokedEntries(trx, issuer, deps.clock.now(), false));
        }
        const now = new Date(Math.max(deps.clock.now().getTime(), Date.parse(claimed.this_update) || 0));
        const nextUpdate = new Date(now.getTime() + validity);
        // Only the header and the signature are left to write here (a SHA-256 over the list's bytes).
        const der = await deps.authority.signCrl({ number: claimed.number, thisUpdate: now, nextUpdate, entries });
        await trx
          .updateTable('crls')
          .set({ this_update: now.toISOString(), next_update: nextUpdate.toISOString(), revoked_count: entries.count, der: Buffer.from(der).toString('base64') })
          .where('issuer_fingerprint', '=', issuer)
          .execute();
        return { number: claimed.number, thisUpdate: now.toISOString(), nextUpdate: nextUpdate.toISOString(), der };
      });
      // The PEM (≈ 20 ms at 100,000 entries) after a turn, not in one stretch with the transaction.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return { ...published, pem: pemEncode(published.der, 'X509 CRL') };
    } catch (e) {
      if (!(e instanceof ListChanged)) throw e;
    }
  }
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
      // A turn between the decoding and the PEM (≈ 10 and 20 ms at 100,000 entries): every other
      // process does this once another one has published.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return { number: row.number, thisUpdate: row.this_update, nextUpdate: row.next_update, der, pem: pemEncode(der, 'X509 CRL') };
    }
  }
  return publishCrl(deps);
}
