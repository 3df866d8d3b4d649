import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import { testDialects, openTestDatabase } from '../helpers/databases.js';
import { isUniqueViolation, migrate } from '../../src/db/database.js';
import { appendAudit, eventHash } from '../../src/audit/log.js';
import { GENESIS_HASH } from '../../src/db/migrations/001_initial.js';
import { tempDir } from '../helpers/tmp.js';

for (const dialect of testDialects()) {
  describe(`database schema on ${dialect}`, async () => {
    const database = await openTestDatabase(dialect, tempDir());
    after(() => database.drop());
    const { db } = database;
    const at = '2026-11-25T00:00:00.000Z';

    const tenant = await db.insertInto('tenants').values({ code: 'T1', name: 'テナント', contact_email: null, created_at: at }).returningAll().executeTakeFirstOrThrow();
    const cert = (serial: string, extra: Partial<{ predecessor_id: number | null; issued_via: 'operator' | 'renewal' | 'reissue'; fingerprint_sha256: string }> = {}) => ({
      serial,
      tenant_id: tenant.id,
      subject: 'CN=T1, O=テナント',
      subject_der: 'AA==',
      label: null,
      key_type: 'p256',
      fingerprint_sha256: extra.fingerprint_sha256 ?? serial.padEnd(64, '0'),
      not_before: at,
      not_after: '2029-11-25T00:00:00.000Z',
      status: 'active' as const,
      revoked_at: null,
      revocation_reason: null,
      predecessor_id: extra.predecessor_id ?? null,
      issued_via: extra.issued_via ?? ('operator' as const),
      issuer_fingerprint: 'ff',
      pem: '-',
      created_at: at,
    });

    test('migrating twice is a no-op', async () => {
      await migrate(database);
      const n = await db.selectFrom('tenants').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      assert.equal(Number(n.n), 1);
    });

    test('serial numbers and fingerprints are unique', async () => {
      await db.insertInto('certificates').values(cert('a1')).execute();
      await assert.rejects(db.insertInto('certificates').values(cert('a1', { fingerprint_sha256: 'x'.repeat(64) })).execute(), isUniqueViolation);
      await assert.rejects(db.insertInto('certificates').values(cert('a2', { fingerprint_sha256: 'a1'.padEnd(64, '0') })).execute(), isUniqueViolation);
    });

    test('a certificate has at most one renewal successor, but may be re-issued beside it', async () => {
      const p = await db.insertInto('certificates').values(cert('b1')).returning('id').executeTakeFirstOrThrow();
      await db.insertInto('certificates').values(cert('b2', { predecessor_id: p.id, issued_via: 'renewal' })).execute();
      await assert.rejects(db.insertInto('certificates').values(cert('b3', { predecessor_id: p.id, issued_via: 'renewal' })).execute(), isUniqueViolation);
      await db.insertInto('certificates').values(cert('b4', { predecessor_id: p.id, issued_via: 'reissue' })).execute();
    });

    test('check constraints reject impossible rows', async () => {
      await assert.rejects(db.insertInto('certificates').values({ ...cert('c1'), not_after: '2020-01-01T00:00:00.000Z' }).execute());
      await assert.rejects(db.insertInto('certificates').values({ ...cert('c2'), status: 'lost' as never }).execute());
      await assert.rejects(db.insertInto('users').values({ tenant_id: tenant.id, login_id: 'u', password_hash: 'x', role: 'root' as never, locked_at: null, created_at: at }).execute());
    });

    test('login IDs are unique per tenant, not globally', async () => {
      const t2 = await db.insertInto('tenants').values({ code: 'T2', name: 'n', contact_email: null, created_at: at }).returning('id').executeTakeFirstOrThrow();
      const u = { login_id: 'admin', password_hash: 'x', role: 'admin' as const, locked_at: null, created_at: at };
      await db.insertInto('users').values({ ...u, tenant_id: tenant.id }).execute();
      await db.insertInto('users').values({ ...u, tenant_id: t2.id }).execute();
      await assert.rejects(db.insertInto('users').values({ ...u, tenant_id: tenant.id }).execute(), isUniqueViolation);
    });

    test('audit events form a hash chain from the genesis hash', async () => {
      const when = new Date(at);
      for (let i = 0; i < 3; i++) await db.transaction().execute((trx) => appendAudit(trx, when, { actor: 'test', action: `a.${i}`, details: { i } }));
      const rows = await db.selectFrom('audit_events').selectAll().orderBy('id').execute();
      assert.equal(rows.length, 3);
      let prev = GENESIS_HASH;
      for (const r of rows) {
        assert.equal(r.prev_hash, prev);
        assert.equal(r.hash, eventHash(prev, r));
        prev = r.hash;
      }
      const head = await db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow();
      assert.equal(head.hash, prev);
      assert.equal(head.count, 3);
    });

    test('an audit append rolled back with its transaction leaves no trace', async () => {
      const before = await db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow();
      await assert.rejects(
        db.transaction().execute(async (trx) => {
          await appendAudit(trx, new Date(at), { actor: 'test', action: 'doomed' });
          throw new Error('crash after audit');
        }),
        /crash after audit/,
      );
      assert.deepEqual(await db.selectFrom('audit_head').selectAll().executeTakeFirstOrThrow(), before);
      assert.equal((await db.selectFrom('audit_events').select('id').where('action', '=', 'doomed').execute()).length, 0);
    });

    test('concurrent appends keep one unbroken chain', async () => {
      await Promise.all(Array.from({ length: 20 }, (_, i) => db.transaction().execute((trx) => appendAudit(trx, new Date(at), { actor: 'c', action: 'concurrent', details: { i } }))));
      const rows = await db.selectFrom('audit_events').selectAll().orderBy('id').execute();
      let prev = GENESIS_HASH;
      for (const r of rows) {
        assert.equal(r.prev_hash, prev, `row ${r.id} links to its predecessor`);
        prev = r.hash;
      }
    });

    test('the CRL reads the revoked certificates of an issuer from an index, not the whole table', async () => {
      // The queries of certificates/crl.ts: the revoked entries in order, and their count.
      const queries = [
        sql`select serial, revoked_at, revocation_reason from certificates where issuer_fingerprint = ${'ff'} and status = ${'revoked'} order by revoked_at`,
        sql`select count(*) from certificates where issuer_fingerprint = ${'ff'} and status = ${'revoked'}`,
      ];
      for (const q of queries) {
        const plan = await db.transaction().execute(async (trx) => {
          if (dialect === 'sqlite') return (await sql<{ detail: string }>`explain query plan ${q}`.execute(trx)).rows.map((r) => r.detail).join('\n');
          // A table this small is cheaper to scan; ask PostgreSQL whether it could use the index.
          await sql`set local enable_seqscan = off`.execute(trx);
          return (await sql<{ 'QUERY PLAN': string }>`explain ${q}`.execute(trx)).rows.map((r) => r['QUERY PLAN']).join('\n');
        });
        assert.match(plan, /certificates_revoked/, plan);
        assert.doesNotMatch(plan, /SCAN certificates\b(?! USING)|Seq Scan/, plan);
      }
    });
  });
}

test('a migration that lands after a higher-numbered one has run is run, not refused', async () => {
  const dir = tempDir();
  const database = await openTestDatabase('sqlite', dir);
  try {
    // As if this database had been migrated by a build without 008 (it landed from another branch later).
    await sql`drop table handovers`.execute(database.db);
    await sql`delete from kysely_migration where name = '008_handovers'`.execute(database.db);
    await migrate(database);
    const names = (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(database.db)).rows.map((r) => r.name);
    assert.ok(names.includes('008_handovers'));
    await sql`select count(*) from handovers`.execute(database.db);
  } finally {
    await database.drop();
  }
});

for (const dialect of testDialects()) {
  test(`a migration that fails half-way leaves the schema as it was, and the next start migrates (${dialect})`, async () => {
    const dir = tempDir();
    const database = await openTestDatabase(dialect, dir);
    try {
      // As if this database had been migrated by the build before 016…
      await sql`drop index certificates_unrenewed`.execute(database.db);
      await sql`drop trigger certificates_mark_predecessor${sql.raw(dialect === 'postgres' ? ' on certificates' : '')}`.execute(database.db);
      if (dialect === 'postgres') await sql`drop function certificates_mark_predecessor`.execute(database.db);
      await sql`alter table certificates drop column has_successor`.execute(database.db);
      await sql`delete from kysely_migration where name = '016_certificates_renewed_flag'`.execute(database.db);
      // …and 016's last statement cannot run: the name of its index is taken.
      await sql`create table certificates_unrenewed (x integer)`.execute(database.db);
      await assert.rejects(migrate(database), /database migration 016_certificates_renewed_flag failed/);
      await assert.rejects(sql`select has_successor from certificates`.execute(database.db), /has_successor/, 'the column added before the failure is gone');
      const recorded = (await sql<{ name: string }>`select name from kysely_migration where name = '016_certificates_renewed_flag'`.execute(database.db)).rows;
      assert.deepEqual(recorded, []);

      await sql`drop table certificates_unrenewed`.execute(database.db);
      await migrate(database);
      await sql`select has_successor from certificates`.execute(database.db);
    } finally {
      await database.drop();
    }
  });
}

test('a SQLite database left half-way through 016 by a build that migrated outside a transaction is completed', async () => {
  const database = await openTestDatabase('sqlite', tempDir());
  try {
    await sql`drop index certificates_unrenewed`.execute(database.db);
    await sql`drop trigger certificates_mark_predecessor`.execute(database.db);
    await sql`delete from kysely_migration where name = '016_certificates_renewed_flag'`.execute(database.db);
    // The column is there (the old build's first statement ran), nothing else.
    await migrate(database);
    const objects = (await sql<{ name: string }>`select name from sqlite_master where name in ('certificates_unrenewed', 'certificates_mark_predecessor') order by name`.execute(database.db)).rows.map((r) => r.name);
    assert.deepEqual(objects, ['certificates_mark_predecessor', 'certificates_unrenewed']);
  } finally {
    await database.drop();
  }
});

test('opening an up-to-date SQLite database does not wait for another process’s write (no migration lock when nothing is pending)', async () => {
  const dir = tempDir();
  const database = await openTestDatabase('sqlite', dir);
  // Another process in the middle of a write transaction (a serve process renewing).
  const writer = new SqliteDatabase(path.join(dir, 'test.sqlite'));
  writer.exec('begin immediate');
  try {
    await migrate(database);
  } finally {
    writer.exec('rollback');
    writer.close();
    await database.drop();
  }
});

test('a database migrated by a newer build (a migration this one does not know) is still refused', async () => {
  const database = await openTestDatabase('sqlite', tempDir());
  try {
    await sql`insert into kysely_migration (name, timestamp) values ('999_from_a_newer_build', '2030-01-01T00:00:00.000Z')`.execute(database.db);
    await assert.rejects(migrate(database), /999_from_a_newer_build/);
  } finally {
    await database.drop();
  }
});
