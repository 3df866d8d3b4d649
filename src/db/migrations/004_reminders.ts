import type { Kysely } from 'kysely';

/**
 * The reminder ledger: one row per (certificate, threshold). Its primary key is what makes a
 * reminder go out at most once, even with several instances running the scheduler.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('reminders')
    .addColumn('certificate_id', 'integer', (c) => c.notNull().references('certificates.id'))
    /** Days-left threshold (90, 60 …); 0 is the escalation to the operator after expiry. */
    .addColumn('threshold', 'integer', (c) => c.notNull())
    /** 'sending' while an instance holds the claim, 'sent' once the SMTP server accepted it. */
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('recipient', 'text', (c) => c.notNull())
    .addColumn('claimed_at', 'text', (c) => c.notNull())
    .addColumn('sent_at', 'text')
    .addPrimaryKeyConstraint('reminders_pk', ['certificate_id', 'threshold'])
    .execute();
}
