import { sql, type Kysely } from 'kysely';

/**
 * Tenant codes are case-insensitive: "t0001" is the tenant "T0001", not a second one beside it
 * (both would be CN=T0001 to a person reading a certificate list). Codes stay stored as they were
 * typed, because they are the CN of certificates already issued; the database enforces the rule
 * with a unique index on lower(code), the same expression on SQLite and PostgreSQL (codes are ASCII,
 * so SQLite's ASCII-only lower() is exact), and lookups use it (src/db/tenant-code.ts).
 *
 * An installation that already has two codes differing only in case cannot take the index; the
 * migration says which, rather than failing with a bare constraint error.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const clashes = await sql<{ code: string }>`
    select code from tenants
    where lower(code) in (select lower(code) from tenants group by lower(code) having count(*) > 1)
    order by lower(code), code`.execute(db);
  if (clashes.rows.length) {
    throw new Error(
      `tenant codes are case-insensitive from this version, but these differ only in case: ${clashes.rows.map((r) => r.code).join(', ')}; ` +
        'move the users and certificates of one of them to the other (or remove it) with the previous version, then upgrade',
    );
  }
  await sql`create unique index tenants_code_ci on tenants (lower(code))`.execute(db);
}
