import type { Kysely } from 'kysely';

/**
 * `kenshin onboard`: which CSV row became which certificate, and the initial passwords of the users
 * it created, sealed (package vault) until the delivery sheets are written. Together with the
 * certificate's handover (its .p12 and password, sealed in the issuing transaction) this makes a
 * run resumable: killed at any point, a re-run with the same CSV issues nothing twice and still
 * has every password to print.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('onboarding_rows')
    /** tenant code (lower case) | 機関番号 | label: one certificate per PC. */
    .addColumn('row_key', 'text', (c) => c.primaryKey())
    .addColumn('certificate_id', 'integer', (c) => c.notNull().references('certificates.id'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('onboarding_users')
    .addColumn('user_id', 'integer', (c) => c.primaryKey().references('users.id'))
    /** The initial login password, sealed; null once it was printed on a delivery slip. */
    .addColumn('password_sealed', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
}
