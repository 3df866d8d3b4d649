import type { Kysely } from 'kysely';
import type { Dialect } from '../database.js';
import { identity } from './columns.js';

/**
 * A certificate `kenshin cert issue` registered, with its .p12 and password sealed (package vault)
 * until the command has put the file in place and printed the password. Written in the issuing
 * transaction, so after a crash at any instant a registered certificate either was handed over or
 * can still be handed over (`kenshin cert recover`); wiped (package_sealed null) once it was.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  await db.schema
    .createTable('handovers')
    .addColumn('id', 'integer', identity(dialect))
    .addColumn('certificate_id', 'integer', (c) => c.notNull().unique().references('certificates.id'))
    .addColumn('output_file', 'text', (c) => c.notNull())
    .addColumn('package_sealed', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('handed_over_at', 'text')
    .execute();
}
