import type { Kysely } from 'kysely';
import type { Dialect } from '../database.js';
import { identity } from './columns.js';

/**
 * Certificates an operator issued from the console, waiting for their one download: the .p12 is
 * sealed until it is fetched once (or a day passes), then wiped. The password is never stored.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  await db.schema
    .createTable('deliveries')
    .addColumn('id', 'integer', identity(dialect))
    .addColumn('download_id', 'text', (c) => c.notNull().unique())
    .addColumn('certificate_id', 'integer', (c) => c.notNull().references('certificates.id'))
    .addColumn('operator_user_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('package_sealed', 'text')
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('downloaded_at', 'text')
    .execute();
}
