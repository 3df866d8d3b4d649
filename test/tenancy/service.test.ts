import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../helpers/databases.js';
import { makeWorld } from '../helpers/world.js';
import { addInstitution, addTenant, addUser } from '../../src/tenancy/service.js';
import { verifyPassword } from '../../src/identity/passwords.js';
import { Refusal } from '../../src/errors.js';
import type { Db } from '../../src/db/database.js';

const refused = (code: string, field?: string) => (e: unknown) => {
  assert.ok(e instanceof Refusal, `expected a Refusal, got ${String(e)}`);
  assert.equal(e.code, code);
  if (field) assert.equal(e.field, field);
  return true;
};

/** Everything in the database, to prove a refusal changed nothing. */
async function snapshot(db: Db) {
  return {
    tenants: await db.selectFrom('tenants').selectAll().orderBy('id').execute(),
    institutions: await db.selectFrom('institutions').selectAll().orderBy('id').execute(),
    users: await db.selectFrom('users').select(['id', 'login_id', 'tenant_id', 'role']).orderBy('id').execute(),
    links: await db.selectFrom('user_institutions').selectAll().orderBy(['user_id', 'institution_id']).execute(),
    audit: await db.selectFrom('audit_head').selectAll().execute(),
  };
}

for (const dialect of testDialects()) {
  describe(`tenancy on ${dialect}`, async () => {
    const w = await makeWorld(dialect);
    const deps = { db: w.runtime.database.db, clock: w.clock };
    await addTenant(deps, { code: 'T0001', name: '山田クリニック', email: 'office@yamada.example.jp' }, 'test');
    await addTenant(deps, { code: 'T0002', name: '別の医院' }, 'test');
    await addInstitution(deps, { tenantCode: 'T0001', number: '1312345678', name: '山田クリニック本院' }, 'test');
    await addInstitution(deps, { tenantCode: 'T0001', number: '1312345679', name: '山田クリニック分院' }, 'test');
    await addInstitution(deps, { tenantCode: 'T0002', number: '2712345678', name: '別の医院' }, 'test');

    test('a user gets a scrypt hash and the institutions of its tenant', async () => {
      const u = await addUser(deps, { tenantCode: 'T0001', loginId: 'yamada', password: 'correct horse', role: '管理者', institutionNumbers: ['1312345678', '1312345679'] }, 'test');
      assert.equal(u.role, 'admin');
      assert.match(u.password_hash, /^scrypt\$/);
      assert.ok(await verifyPassword('correct horse', u.password_hash));
      assert.ok(!(await verifyPassword('wrong horse', u.password_hash)));
      const links = await deps.db.selectFrom('user_institutions').innerJoin('institutions', 'institutions.id', 'user_institutions.institution_id').select('number').where('user_id', '=', u.id).orderBy('number').execute();
      assert.deepEqual(links.map((l) => l.number), ['1312345678', '1312345679']);
      const audit = await deps.db.selectFrom('audit_events').select(['action', 'details']).where('action', '=', 'user.created').execute();
      assert.equal(audit.length, 1);
      assert.ok(!audit[0]!.details.includes('correct horse'), 'the audit log never holds a password');
    });

    const bad: [string, () => Promise<unknown>, string, string?][] = [
      ['duplicate tenant code', () => addTenant(deps, { code: 'T0001', name: 'x' }, 't'), 'duplicate_tenant', 'code'],
      ['tenant code with spaces', () => addTenant(deps, { code: 'T 1', name: 'x' }, 't'), 'invalid_input', 'code'],
      ['tenant without a name', () => addTenant(deps, { code: 'T9', name: '  ' }, 't'), 'invalid_input', 'name'],
      ['tenant with a bad e-mail', () => addTenant(deps, { code: 'T9', name: 'x', email: 'not-mail' }, 't'), 'invalid_input', 'email'],
      ['9-digit institution number', () => addInstitution(deps, { tenantCode: 'T0001', number: '131234567', name: 'x' }, 't'), 'invalid_input', 'number'],
      ['11-digit institution number', () => addInstitution(deps, { tenantCode: 'T0001', number: '13123456789', name: 'x' }, 't'), 'invalid_input', 'number'],
      ['full-width institution number', () => addInstitution(deps, { tenantCode: 'T0001', number: '１３１２３４５６７８', name: 'x' }, 't'), 'invalid_input', 'number'],
      ['duplicate institution number', () => addInstitution(deps, { tenantCode: 'T0002', number: '1312345678', name: 'x' }, 't'), 'duplicate_institution', 'number'],
      ['institution of an unknown tenant', () => addInstitution(deps, { tenantCode: 'NOPE', number: '1300000000', name: 'x' }, 't'), 'unknown_tenant', 'tenant'],
      ['user of an unknown tenant', () => addUser(deps, { tenantCode: 'NOPE', loginId: 'a', password: 'long enough', institutionNumbers: [] }, 't'), 'unknown_tenant', 'tenant'],
      ['user with a short password', () => addUser(deps, { tenantCode: 'T0001', loginId: 'b', password: 'short', institutionNumbers: [] }, 't'), 'invalid_input', 'password'],
      ['user with an unknown role', () => addUser(deps, { tenantCode: 'T0001', loginId: 'b', password: 'long enough', role: 'root' }, 't'), 'invalid_input', 'role'],
      ['user with another tenant’s institution', () => addUser(deps, { tenantCode: 'T0001', loginId: 'c', password: 'long enough', institutionNumbers: ['2712345678'] }, 't'), 'unknown_institution', 'institutions'],
      ['user with an unknown institution', () => addUser(deps, { tenantCode: 'T0001', loginId: 'c', password: 'long enough', institutionNumbers: ['1300000000'] }, 't'), 'unknown_institution', 'institutions'],
      ['a login that exists', () => addUser(deps, { tenantCode: 'T0001', loginId: 'yamada', password: 'long enough', institutionNumbers: ['1312345678'] }, 't'), 'duplicate_login', 'login'],
    ];
    for (const [name, call, code, field] of bad) {
      test(`refused: ${name}, and nothing changes`, async () => {
        const before = await snapshot(deps.db);
        await assert.rejects(call(), refused(code, field));
        assert.deepEqual(await snapshot(deps.db), before);
      });
    }

    test('the same login ID may exist in another tenant', async () => {
      await addUser(deps, { tenantCode: 'T0002', loginId: 'yamada', password: 'long enough', institutionNumbers: ['2712345678'] }, 'test');
    });
  });
}
