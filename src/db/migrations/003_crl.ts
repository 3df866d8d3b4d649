import type { Kysely } from 'kysely';

/** The published CRL per issuing CA: its number only ever grows (RFC 5280 cRLNumber). */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('crls')
    .addColumn('issuer_fingerprint', 'text', (c) => c.primaryKey())
    .addColumn('number', 'integer', (c) => c.notNull())
    .addColumn('this_update', 'text', (c) => c.notNull())
    .addColumn('next_update', 'text', (c) => c.notNull())
    /** How many revocations it lists: a different count in the database means it is out of date. */
    .addColumn('revoked_count', 'integer', (c) => c.notNull().defaultTo(0))
    /** Base64 DER; empty until the first signature. */
    .addColumn('der', 'text', (c) => c.notNull())
    .execute();
}
