import type { Kysely } from 'kysely';

/**
 * Certificates Kenshin did not issue but registered (`kenshin cert import`, when it takes over a
 * running service): where each came from. The certificate row itself is an ordinary one (its
 * issuer_fingerprint names the external CA), so login, renewal, reminders, the dashboard and
 * revocation treat it like any other.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('certificate_imports')
    .addColumn('certificate_id', 'integer', (c) => c.primaryKey().references('certificates.id'))
    /** "openssl-index:/path/index.txt:12", "file:/path/c1.pem" — for the operator, not parsed. */
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('imported_at', 'text', (c) => c.notNull())
    .execute();
}
