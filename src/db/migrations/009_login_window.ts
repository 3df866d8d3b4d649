import { sql, type Kysely } from 'kysely';

/**
 * Login throttling by window (identity/throttle.ts). `window_started_at`: when the failures being
 * counted began, so the count starts again once a lock (or a quiet window) has passed instead of
 * growing for ever. `refused`: attempts turned away while locked, counted here and written to the
 * audit log once per lock, so a flood of locked attempts costs a counter, not a row each.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('login_throttle').addColumn('window_started_at', 'text').execute();
  await db.schema.alterTable('login_throttle').addColumn('refused', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await sql`update login_throttle set window_started_at = last_failure_at`.execute(db);
}
