import type { Kysely } from 'kysely';
import type { Dialect } from '../database.js';
import { identity } from './columns.js';

/** The portal: renewals with their packages, server-side sessions, login throttling. */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const id = identity(dialect);

  await db.schema
    .createTable('renewals')
    .addColumn('id', 'integer', id)
    // unique: one renewal per certificate. With certificates_one_renewal this makes a double click,
    // a second tab or a second instance fail at INSERT instead of issuing a second successor.
    .addColumn('predecessor_id', 'integer', (c) => c.notNull().unique().references('certificates.id'))
    .addColumn('successor_id', 'integer', (c) => c.notNull().unique().references('certificates.id'))
    /** Unguessable id used in download URIs (never a serial: URIs end up in logs). */
    .addColumn('download_id', 'text', (c) => c.notNull().unique())
    /** AES-256-GCM sealed JSON {p12s, password}; null once wiped. */
    .addColumn('package_sealed', 'text')
    .addColumn('package_expires_at', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('taken_up_at', 'text')
    .addColumn('wiped_at', 'text')
    .execute();

  await db.schema
    .createTable('sessions')
    /** SHA-256 of the cookie value: a database leak does not hand out live sessions. */
    .addColumn('id_hash', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
    /** The certificate the session was opened with; a request with any other certificate ends it. */
    .addColumn('certificate_id', 'integer', (c) => c.notNull().references('certificates.id'))
    .addColumn('institution_id', 'integer', (c) => c.references('institutions.id'))
    .addColumn('csrf_token', 'text', (c) => c.notNull())
    /** "あとで" on the renewal check: do not show it again in this session. */
    .addColumn('renewal_deferred', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sessions_certificate').on('sessions').column('certificate_id').execute();

  await db.schema
    .createTable('login_throttle')
    /** "login:<tenant id>:<login id>" or "cert:<certificate id>". */
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('last_failure_at', 'text', (c) => c.notNull())
    .addColumn('locked_until', 'text')
    .execute();
}
