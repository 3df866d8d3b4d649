import { sql, type Kysely } from 'kysely';

/**
 * Which process runs an onboarding job, and that it is still alive. With several `serve` processes
 * (or instances) a job started in one is looked at, resumed or deleted from another: the run is
 * claimed in the database and its process writes a heartbeat with the progress every few seconds.
 * A "running" job whose heartbeat stopped is interrupted — stored as such once another start
 * notices, so that the one-running-job rule (the unique index) lets the next job start.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('onboarding_jobs').addColumn('runner', 'text').execute();
  // Milliseconds of the machine's clock: liveness, not a business date (the injected clock may stand still).
  await db.schema.alterTable('onboarding_jobs').addColumn('heartbeat_ms', 'bigint').execute();
  await db.schema.alterTable('onboarding_jobs').addColumn('run_started_ms', 'bigint').execute();
  await db.schema.alterTable('onboarding_jobs').addColumn('progress_done', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('onboarding_jobs').addColumn('progress_total', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  // A job left "running" by a build that kept runs in memory has no heartbeat: interrupted.
  await sql`update onboarding_jobs set status = 'interrupted' where status = 'running'`.execute(db);
  // One run at a time in the whole service: the mint capacity is shared with live renewals.
  await sql`create unique index onboarding_jobs_one_running on onboarding_jobs (status) where status = 'running'`.execute(db);
}
