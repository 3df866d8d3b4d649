import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Migrator, type Migration } from 'kysely';
import { testDialects, freshDatabaseUrl } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { kenshin } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { MIGRATIONS, openDatabase, migrate, isUniqueViolation } from '../../src/db/database.js';
import { addInstitution, addTenant, addUser, findTenant, setUserLocked } from '../../src/tenancy/service.js';
import { searchAudit } from '../../src/audit/search.js';
import { Refusal } from '../../src/errors.js';

/**
 * Tenant codes are case-insensitive, stored as typed (src/tenancy/validation.ts#tenantCode): the
 * database refuses a second code differing only in case (migration 007), and every lookup finds
 * the tenant whatever case is typed.
 */
for (const dialect of testDialects()) {
  describe(`tenant codes are case-insensitive on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const db = w.runtime.database.db;
    const deps = { db, clock: w.clock };
    await addTenant(deps, { code: 'T0001', name: '山田クリニック' }, 'test');

    test('t0001 beside T0001 is a duplicate, refused by the service and by the database itself', async () => {
      for (const code of ['t0001', 'T0001', ' t0001 ']) {
        await assert.rejects(addTenant(deps, { code, name: '別' }, 'test'), (e: unknown) => e instanceof Refusal && e.code === 'duplicate_tenant' && /case-insensitive/.test(e.message));
      }
      // Not only the service: a raw insert that skips it is refused by the unique index on lower(code).
      await assert.rejects(db.insertInto('tenants').values({ code: 'T0001'.toLowerCase(), name: 'x', contact_email: null, created_at: w.clock.now().toISOString() }).execute(), (e: unknown) => isUniqueViolation(e));
      assert.deepEqual((await db.selectFrom('tenants').select('code').execute()).map((t) => t.code), ['T0001']);
    });

    test('the code is stored as typed, and found whatever case is typed', async () => {
      const mixed = await addTenant(deps, { code: 'Clinic-a', name: 'ミックス' }, 'test');
      assert.equal(mixed.code, 'Clinic-a');
      assert.equal((await findTenant(db, 'CLINIC-A')).id, mixed.id);
      assert.equal((await findTenant(db, 't0001')).code, 'T0001');
      await addInstitution(deps, { tenantCode: 't0001', number: '1312345678', name: '本院' }, 'test');
      await addUser(deps, { tenantCode: 't0001', loginId: 'yamada', password: 'correct horse', institutionNumbers: ['1312345678'] }, 'test');
      await setUserLocked(deps, 't0001', 'yamada', true, 'test');
      const rows = await searchAudit(db, { tenantCode: 't0001' });
      assert.ok(rows.some((r) => r.action === 'user.locked'));
      assert.ok(rows.every((r) => r.tenant_code === 'T0001'));
      await assert.rejects(findTenant(db, 'T0002'), (e: unknown) => e instanceof Refusal && e.code === 'unknown_tenant');
    });
  });

  test(`on ${dialect}, migration 007 names the codes that differ only in case instead of failing bare`, async () => {
    const fresh = await freshDatabaseUrl(dialect);
    const database = openDatabase({ url: fresh.url, sqliteFile: `${tempDir()}/old.sqlite`, create: true });
    try {
      const provider = { getMigrations: async () => Object.fromEntries(Object.entries(MIGRATIONS).map(([n, m]) => [n, { up: (d) => m.up(d, dialect) } as Migration])) };
      const before = await new Migrator({ db: database.db, provider }).migrateTo('006_revoked_index');
      assert.equal(before.error, undefined);
      const at = new Date().toISOString();
      await database.db.insertInto('tenants').values([{ code: 'T0001', name: 'a', contact_email: null, created_at: at }, { code: 't0001', name: 'b', contact_email: null, created_at: at }]).execute();
      await assert.rejects(migrate(database), /007_tenant_code_ci failed: .*differ only in case: T0001, t0001/);
      await database.db.deleteFrom('tenants').where('code', '=', 't0001').execute();
      await migrate(database);
      await assert.rejects(database.db.insertInto('tenants').values({ code: 't0001', name: 'c', contact_email: null, created_at: at }).execute(), (e: unknown) => isUniqueViolation(e));
    } finally {
      await database.close();
      await fresh.drop();
    }
  });
}

describe('kenshin tenant add', async () => {
  const dir = tempDir();
  const k = (args: string[]) => kenshin(['--data-dir', dir, ...args]);
  const init = await k(['init']);
  assert.equal(init.code, 0, init.stderr);

  test('--code t0001 beside T0001 is refused (exit 2), and the lower-case code reaches T0001', async () => {
    assert.equal((await k(['tenant', 'add', '--code', 'T0001', '--name', '山田クリニック'])).code, 0);
    const again = await k(['tenant', 'add', '--code', 't0001', '--name', '別の医院']);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /tenant code "t0001" already exists/);
    const inst = await k(['institution', 'add', '--tenant', 't0001', '--number', '1312345678', '--name', '本院']);
    assert.equal(inst.code, 0, inst.stderr);
    const list = await k(['tenant', 'list', '--json']);
    assert.deepEqual((list.json() as unknown as { code: string }[]).map((t) => t.code), ['T0001']);
  });
});
