import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePortalWorld, loginAs, PASSWORD } from '../helpers/portal-world.js';
import { addInstitution, addTenant, addUser } from '../../src/tenancy/service.js';
import { hashPassword } from '../../src/identity/passwords.js';
import { kenshin } from '../helpers/cli.js';
import { Refusal } from '../../src/errors.js';

/** Authorisation holes an outside review found: the operators' tenant, and what a 管理者 can learn. */
describe('authorisation', async () => {
  const w = await makePortalWorld('sqlite');
  const { db } = w.runtime.database;
  const deps = { db, clock: w.clock };
  await addTenant(deps, { code: 'OPERATORS', name: '運用者' }, 'test');
  await addUser(deps, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'test');
  const opsCert = await w.cert(700, { tenant: 'OPERATORS' });

  test('no 管理者 or 一般ユーザ in OPERATORS: refused by the service, the console and the CLI', async () => {
    for (const role of ['admin', 'user']) {
      await assert.rejects(addUser(deps, { tenantCode: 'OPERATORS', loginId: `x-${role}`, password: PASSWORD, role }, 'test'), (e: unknown) => e instanceof Refusal && e.field === 'role');
    }
    const c = w.client(opsCert);
    const dash = await loginAs(c, 'ops');
    const tenantPage = await c.get('/admin/tenants/OPERATORS');
    assert.equal(tenantPage.status, 200, dash.text.slice(0, 200));
    const r = await c.submit(tenantPage, '/admin/tenants/OPERATORS/users', { login: 'takeover', role: 'admin', institutions: '' });
    assert.equal(r.status, 400);
    assert.match(r.text, /operators only/);
    const cli = await kenshin(['--data-dir', w.dir, 'user', 'add', '--tenant', 'OPERATORS', '--login', 'takeover2', '--role', 'admin', '--password-stdin'], {
      env: { KENSHIN_CA_PASSPHRASE: 'test-passphrase', KENSHIN_DATABASE_URL: w.config.databaseUrl },
      stdin: PASSWORD,
    });
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, /role/);
    assert.equal((await db.selectFrom('users').select('login_id').where('login_id', 'in', ['takeover', 'takeover2', 'x-admin', 'x-user']).execute()).length, 0);
  });

  test('a 管理者 in OPERATORS left by an older version gets no tenant-admin pages over the operators', async () => {
    const ops = await db.selectFrom('tenants').select('id').where('code', '=', 'OPERATORS').executeTakeFirstOrThrow();
    // With a 健診機関 of its own, as the reviewer's was: the tenant pages require one.
    await addInstitution(deps, { tenantCode: 'OPERATORS', number: '0000000001', name: '運用' }, 'test');
    const inst = await db.selectFrom('institutions').select('id').where('number', '=', '0000000001').executeTakeFirstOrThrow();
    const legacy = await db.insertInto('users').values({ tenant_id: ops.id, login_id: 'legacyadmin', password_hash: await hashPassword(PASSWORD), role: 'admin', locked_at: null, created_at: w.clock.now().toISOString() }).returning('id').executeTakeFirstOrThrow();
    await db.insertInto('user_institutions').values({ user_id: legacy.id, institution_id: inst.id }).execute();
    const c = w.client(await w.cert(700, { tenant: 'OPERATORS' }));
    const home = await loginAs(c, 'legacyadmin');
    assert.doesNotMatch(home.text, /ops/, 'the operators are not listed');
    const page = await c.get('/tenant');
    assert.equal(page.status, 403);
    assert.doesNotMatch(page.text, /\bops\b/);
    const csrf = /name="_csrf" value="([^"]*)"/.exec(home.text)![1]!;
    const reset = await c.request('POST', '/tenant/users/ops/reset-password', { form: { _csrf: csrf } });
    assert.equal(reset.status, 403);
    const opsUser = await db.selectFrom('users').select('password_hash').where('login_id', '=', 'ops').executeTakeFirstOrThrow();
    assert.ok(opsUser.password_hash.startsWith('scrypt$'));
  });

  test("a tenant's 管理者 cannot tell another tenant's 機関番号 from an unknown one", async () => {
    const c = w.client(await w.cert(300));
    const home = await loginAs(c, 'yamada');
    const chosen = home.text.includes('健診機関選択') ? await c.follow(await c.submit(home, '/institutions', { institutionId: String((await db.selectFrom('institutions').select('id').where('number', '=', '1312345678').executeTakeFirstOrThrow()).id) })) : home;
    assert.ok(chosen.status === 200, String(chosen.status));
    const page = await c.get('/tenant');
    assert.equal(page.status, 200);
    const others = await c.submit(page, '/tenant/users', { login: 'probe1', role: 'user', institutions: '2712345678' }); // T0002's
    const unknown = await c.submit(page, '/tenant/users', { login: 'probe2', role: 'user', institutions: '9999999999' });
    assert.equal(others.status, 400);
    assert.equal(unknown.status, 400);
    const message = (p: string) => /class="notice error"[^>]*>([^<]*)</.exec(p)?.[1]?.replace(/\d{10}/g, 'N');
    assert.ok(message(others.text), others.text.slice(0, 500));
    assert.equal(message(others.text), message(unknown.text));
  });
});
