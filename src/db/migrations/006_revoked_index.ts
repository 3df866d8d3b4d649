import { sql, type Kysely } from 'kysely';

/**
 * The revoked certificates of an issuing CA, in revocation order, from an index alone. The CRL is
 * built from them after every revocation, and every CRL request first counts them to see whether
 * the stored CRL is stale; without this index both read the whole certificates table (about a
 * second each with a million certificates). Partial: only revoked rows are in it, so it stays
 * small, and covering (serial, reason), so the CRL never touches the table.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index certificates_revoked on certificates (issuer_fingerprint, revoked_at, serial, revocation_reason) where status = 'revoked'`.execute(db);
}
