import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.js';
import { identity } from './columns.js';

/** One set of migrations for SQLite and PostgreSQL; only the identity column differs. */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const id = identity(dialect);

  await db.schema
    .createTable('tenants')
    .addColumn('id', 'integer', id)
    .addColumn('code', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('contact_email', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('institutions')
    .addColumn('id', 'integer', id)
    .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id'))
    .addColumn('number', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('institutions_tenant').on('institutions').column('tenant_id').execute();

  await db.schema
    .createTable('users')
    .addColumn('id', 'integer', id)
    .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id'))
    .addColumn('login_id', 'text', (c) => c.notNull())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('admin', 'user', 'operator')`))
    .addColumn('locked_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    // A login ID is unique within its tenant: the certificate says which tenant is logging in.
    .addUniqueConstraint('users_tenant_login', ['tenant_id', 'login_id'])
    .execute();

  await db.schema
    .createTable('user_institutions')
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('institution_id', 'integer', (c) => c.notNull().references('institutions.id'))
    .addPrimaryKeyConstraint('user_institutions_pk', ['user_id', 'institution_id'])
    .execute();

  await db.schema
    .createTable('certificates')
    .addColumn('id', 'integer', id)
    .addColumn('serial', 'text', (c) => c.notNull().unique())
    .addColumn('tenant_id', 'integer', (c) => c.notNull().references('tenants.id'))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('subject_der', 'text', (c) => c.notNull())
    .addColumn('label', 'text')
    .addColumn('key_type', 'text', (c) => c.notNull())
    .addColumn('fingerprint_sha256', 'text', (c) => c.notNull().unique())
    .addColumn('not_before', 'text', (c) => c.notNull())
    .addColumn('not_after', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'revoked')`))
    .addColumn('revoked_at', 'text')
    .addColumn('revocation_reason', 'text')
    .addColumn('predecessor_id', 'integer', (c) => c.references('certificates.id'))
    .addColumn('issued_via', 'text', (c) => c.notNull().check(sql`issued_via in ('operator', 'renewal', 'reissue')`))
    .addColumn('issuer_fingerprint', 'text', (c) => c.notNull())
    .addColumn('pem', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addCheckConstraint('certificates_dates', sql`not_before < not_after`)
    .execute();
  // One self-renewal successor per certificate, enforced here rather than by check-then-insert:
  // a double click or two instances racing both reach the INSERT, and only one row can win.
  await sql`create unique index certificates_one_renewal on certificates (predecessor_id) where issued_via = 'renewal'`.execute(db);
  await db.schema.createIndex('certificates_tenant').on('certificates').column('tenant_id').execute();
  await db.schema.createIndex('certificates_not_after').on('certificates').column('not_after').execute();
  await db.schema.createIndex('certificates_predecessor').on('certificates').column('predecessor_id').execute();

  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'integer', id)
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('tenant_id', 'integer')
    .addColumn('target', 'text')
    .addColumn('details', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull().unique())
    .execute();
  await db.schema.createIndex('audit_events_tenant').on('audit_events').column('tenant_id').execute();

  // The chain head: one row whose UPDATE every append starts with. The row lock (PostgreSQL) or the
  // write lock it takes (SQLite) serialises appends, so each event links to the one before it.
  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .execute();
  await sql`insert into audit_head (id, hash, count) values (1, ${GENESIS_HASH}, 0)`.execute(db);
}

export const GENESIS_HASH = '0'.repeat(64);
