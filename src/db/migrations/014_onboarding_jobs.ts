import type { Kysely } from 'kysely';

/**
 * Onboarding from the console: an uploaded CSV, its preview, and the run that issues it. The CSV
 * (names, 機関番号, e-mail addresses; no secret) is kept so a run interrupted by a restart can be
 * resumed from the same rows; the output files live in the data directory under onboarding/<id>/
 * until the operator deletes them.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('onboarding_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('file_name', 'text', (c) => c.notNull())
    .addColumn('csv', 'text', (c) => c.notNull())
    /** previewed → running → done | failed; "interrupted" is a running job no process is running. */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('key_type', 'text', (c) => c.notNull())
    .addColumn('profile', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    /** The preview's report (JSON), then the run's. */
    .addColumn('report', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('files_deleted_at', 'text')
    .execute();
  await db.schema.createIndex('onboarding_jobs_created').on('onboarding_jobs').column('created_at').execute();
}
