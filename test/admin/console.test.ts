import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../helpers/databases.js';
import { makePortalWorld, loginAs, PASSWORD, type PortalWorld } from '../helpers/portal-world.js';
import { addTenant, addUser } from '../../src/tenancy/service.js';
import { Refusal } from '../../src/errors.js';
import { normaliseSerial } from '../../src/ca/serial.js';
import { startRenewal } from '../../src/renewal/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { appendAudit } from '../../src/audit/log.js';
import { displaySerial } from '../../src/ca/serial.js';

/** The reserved operators' tenant, an operator "ops", and a client logged in with its certificate. */
async function operatorClient(w: PortalWorld) {
  const db = w.runtime.database.db;
  await addTenant({ db, clock: w.clock }, { code: 'OPERATORS', name: '運用者' }, 'test');
  await addUser({ db, clock: w.clock }, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'test');
  const client = w.client(await w.cert(700, { tenant: 'OPERATORS' }));
  await loginAs(client, 'ops');
  return client;
}

for (const dialect of testDialects()) {
  describe(`operator console on ${dialect}`, async () => {
    const w = await makePortalWorld(dialect);
    const db = w.runtime.database.db;
    await addTenant({ db, clock: w.clock }, { code: 'OPERATORS', name: '運用者' }, 'test');
    await addUser({ db, clock: w.clock }, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'test');
    const opsCert = await w.cert(700, { tenant: 'OPERATORS' });
    const soon = await w.cert(20);
    const later = await w.cert(80);
    const renewed = await w.cert(10);
    await startRenewal(await w.runtime.renewalDeps(), renewed.row, 'test');

    test('operators land on the expiry dashboard: buckets, the monthly SVG chart, who has not renewed', async () => {
      const c = w.client(opsCert);
      const page = await loginAs(c, 'ops');
      assert.equal(page.status, 200);
      assert.match(page.text, /<h1>有効期限ダッシュボード<\/h1>/);
      assert.match(page.text, /id="bucket-30">1</);
      assert.match(page.text, /id="bucket-90">2</);
      assert.match(page.text, /<svg id="expiry-chart"/);
      assert.equal((page.text.match(/<rect /g) ?? []).length, 36);
      assert.match(page.text, new RegExp(soon.row.serial));
      assert.match(page.text, new RegExp(later.row.serial));
      assert.doesNotMatch(page.text, new RegExp(`>${renewed.row.serial}<`), 'renewed certificates are done');
      // Sortable headers: soonest first is marked; its header links to latest first, and that page back.
      assert.match(page.text, /<th aria-sort="ascending"><a class="sort" href="\/admin\?sort=expiry-desc#expiring-tenants" id="sort-expiry"[^>]*>有効期限 ▲<\/a><\/th>/);
      assert.ok(page.text.indexOf(soon.row.serial) < page.text.indexOf(later.row.serial), 'soonest first');
      const desc = await c.get('/admin?sort=expiry-desc');
      assert.match(desc.text, /<th aria-sort="descending"><a class="sort" href="\/admin#expiring-tenants" id="sort-expiry"[^>]*>有効期限 ▼<\/a>/);
      assert.ok(desc.text.indexOf(later.row.serial) < desc.text.indexOf(soon.row.serial), 'latest first');
      assert.match((await c.get('/admin?sort=tenant')).text, /<th aria-sort="ascending"><a class="sort" href="\/admin\?sort=tenant#expiring-tenants" id="sort-tenant"/);
      // An order we do not offer is the default, not an error.
      assert.match((await c.get('/admin?sort=bogus')).text, /id="sort-expiry"[^>]*>有効期限 ▲/);
    });

    test('certificates: filtered list and the lineage of a renewed one', async () => {
      const c = w.client(opsCert);
      await loginAs(c, 'ops');
      const list = await c.get('/admin/certificates?tenant=T0001&within=30');
      assert.match(list.text, new RegExp(soon.row.serial));
      assert.doesNotMatch(list.text, new RegExp(later.row.serial));
      const detail = await c.get(`/admin/certificates/${renewed.row.serial}`);
      assert.match(detail.text, /id="lineage"/);
      const successor = await db.selectFrom('certificates').select('serial').where('predecessor_id', '=', renewed.row.id).executeTakeFirstOrThrow();
      assert.match(detail.text, new RegExp(`/admin/certificates/${successor.serial}`));
      assert.match(detail.text, /id="renewal-taken-up">まだポータルで使われていません</);
      assert.match(detail.text, /id="renewal-client-fetched">—</);
      // ORCA's desktop client fetches the package with the old certificate: the console says when and which.
      const desktop = w.client(renewed);
      const started = await desktop.request('POST', '/api/cert', { json: {}, headers: { 'user-agent': 'Java/17.0.12' } });
      assert.equal((await desktop.request('GET', new URL(started.json().uri as string).pathname, { headers: { 'user-agent': 'Java/17.0.12' } })).status, 200);
      assert.match((await c.get(`/admin/certificates/${renewed.row.serial}`)).text, /id="renewal-client-fetched">\d{4}-\d\d-\d\d \d\d:\d\d \(<code>Java\/17\.0\.12<\/code>\)</);
      assert.equal((await c.get('/admin/certificates/zzzz')).status, 400);
      const revokedOnly = await c.get('/admin/certificates?status=revoked');
      assert.doesNotMatch(revokedOnly.text, new RegExp(soon.row.serial));
      const activeOnly = await c.get('/admin/certificates?status=active&tenant=T0001');
      assert.match(activeOnly.text, new RegExp(soon.row.serial));
    });

    test('certificates 100 to a page with a keyset "next", search by serial and 機関番号; the audit log 500 to a page', async () => {
      const c = w.client(opsCert);
      await loginAs(c, 'ops');
      const deps = await w.runtime.certificateDeps();
      const before = await db.selectFrom('certificates').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      for (let i = 0; Number(before.n) + i < 105; i++) await issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'test' });
      const first = await c.get('/admin/certificates');
      const serialsOf = (text: string) => [...text.matchAll(/<a href="\/admin\/certificates\/([0-9a-f]+)">/g)].map((m) => m[1]!);
      assert.equal(serialsOf(first.text).length, 100);
      const next = /href="([^"]+)" id="page-next"/.exec(first.text);
      assert.ok(next?.[1], 'a next link');
      const second = await c.get(next[1]!.replace(/&amp;/g, '&'));
      assert.ok(serialsOf(second.text).length >= 5);
      assert.equal(new Set([...serialsOf(first.text), ...serialsOf(second.text)]).size, serialsOf(first.text).length + serialsOf(second.text).length, 'no row on both pages');
      assert.match(second.text, /id="page-first"/);
      assert.equal((await c.get('/admin/certificates?after=bogus')).status, 400);
      // Search with the serial as the browser shows it.
      const wanted = soon.row.serial;
      const found = await c.get(`/admin/certificates?q=${encodeURIComponent(displaySerial(wanted))}`);
      assert.deepEqual(serialsOf(found.text), [wanted]);
      // The audit log: 500 rows, then "older" continues below the last one.
      for (let i = 0; i < 520; i++) await db.transaction().execute((trx) => appendAudit(trx, w.clock.now(), { actor: 'test', action: 'test.filler', target: `n:${i}` }));
      const audit = await c.get('/admin/audit?action=test.filler');
      assert.equal((audit.text.match(/<code>test\.filler<\/code>/g) ?? []).length, 500);
      const older = /href="([^"]+)" id="audit-older"/.exec(audit.text)?.[1];
      assert.ok(older);
      const rest = await c.get(older.replace(/&amp;/g, '&'));
      assert.equal((rest.text.match(/<code>test\.filler<\/code>/g) ?? []).length, 20);
      assert.doesNotMatch(rest.text, /id="audit-older"/);
    });

    test('audit log: filters and CSV', async () => {
      const c = w.client(opsCert);
      await loginAs(c, 'ops');
      const page = await c.get('/admin/audit?action=renewal.issued');
      assert.match(page.text, /<code>renewal\.issued<\/code>/);
      assert.doesNotMatch(page.text, /<code>tenant\.created<\/code>/);
      const csv = await c.get('/admin/audit?tenant=T0001&format=csv');
      assert.equal(csv.headers['content-type'], 'text/csv; charset=utf-8');
      assert.ok(csv.text.startsWith('\ufeffid,at,'), 'streamed, still with the BOM Excel needs');
      const lines = csv.text.replace(/^\ufeff/, '').trim().split('\r\n');
      assert.equal(lines[0], 'id,at,tenant,actor,action,target,details,hash');
      assert.ok(lines.length > 5);
      assert.ok(lines.slice(1).every((l) => l.split(',')[2] === 'T0001'));
    });

    test('everyone else is refused, on the server', async () => {
      const c = w.client(await w.cert(300));
      await loginAs(c, 'solo');
      for (const path of ['/admin', '/admin/certificates', '/admin/audit?format=csv']) {
        const r = await c.get(path);
        assert.equal(r.status, 403, path);
        assert.match(r.text, /運用者のみが利用できます/);
      }
      assert.equal((await w.client().get('/admin')).status, 401);
      await assert.rejects(addUser({ db, clock: w.clock }, { tenantCode: 'T0001', loginId: 'evil', password: PASSWORD, role: 'operator' }, 'test'), (e: unknown) => e instanceof Refusal && e.field === 'role');
    });
  });
}

describe('operator console: issue, re-issue and revoke', async () => {
  const { run } = await import('../helpers/openssl.js');
  const w = await makePortalWorld('sqlite');
  const db = w.runtime.database.db;
  const c = await operatorClient(w);

  test('issue for a tenant: the password once, the file once, a printable delivery sheet', async () => {
    const form = await c.get('/admin/certificates/new?tenant=T0001');
    const issued = await c.submit(form, '/admin/certificates', { tenant: 'T0001', key: 'p256', profile: 'compatible', label: '' });
    assert.equal(issued.status, 201);
    assert.equal(issued.headers['cache-control'], 'no-store');
    assert.match(issued.text, /id="delivery-sheet"/);
    assert.match(issued.text, /id="password-slip"/);
    const password = /id="issued-password">([^<]+)</.exec(issued.text)![1]!;
    const serial = normaliseSerial(/<dt>シリアル番号<\/dt><dd><code>([0-9A-F:]+)<\/code>/.exec(issued.text)![1]!)!;
    const href = /href="(\/admin\/deliveries\/[^"]+)"/.exec(issued.text)![1]!;
    const file = await c.get(href);
    assert.equal(file.status, 200);
    assert.match(run('openssl', ['pkcs12', '-nokeys', '-clcerts', '-passin', `pass:${password}`], file.body), /CN ?= ?T0001/);
    const again = await c.get(href);
    assert.equal(again.status, 410, 'the file is handed out once');
    const row = await db.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirstOrThrow();
    const audit = await db.selectFrom('audit_events').select(['action', 'actor']).where('target', '=', `certificate:${serial}`).orderBy('id').execute();
    assert.deepEqual(audit.map((a) => [a.action, a.actor]), [['certificate.issued', 'operator:ops'], ['package.downloaded', 'operator:ops']]);
    assert.equal(row.issued_via, 'operator');
    const bad = await c.submit(form, '/admin/certificates', { tenant: 'NOPE' });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /unknown tenant &quot;NOPE&quot;/);
  });

  test('re-issue after expiry keeps the name; revoke with successors publishes a CRL', async () => {
    const expired = await w.cert(-5);
    const form = await c.get(`/admin/certificates/new?reissue=${expired.row.serial}`);
    const issued = await c.submit(form, '/admin/certificates', { reissue: expired.row.serial, key: 'p256', profile: 'modern' });
    assert.equal(issued.status, 201);
    const serial = normaliseSerial(/<dt>シリアル番号<\/dt><dd><code>([0-9A-F:]+)<\/code>/.exec(issued.text)![1]!)!;
    const succ = await db.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirstOrThrow();
    assert.equal(succ.subject_der, expired.row.subject_der);
    assert.deepEqual([succ.issued_via, succ.predecessor_id], ['reissue', expired.row.id]);

    const detail = await c.get(`/admin/certificates/${expired.row.serial}`);
    // The CRL of the certificate's own issuing CA (crls also holds the root's).
    const issuerCrl = () => db.selectFrom('crls').select('number').where('issuer_fingerprint', '=', expired.row.issuer_fingerprint).executeTakeFirst();
    const before = await issuerCrl();
    const done = await c.follow(await c.submit(detail, `/admin/certificates/${expired.row.serial}/revoke`, { reason: 'keyCompromise', withSuccessors: '1' }));
    assert.match(done.text, /失効/);
    const after = await db.selectFrom('certificates').select('status').where('id', '=', succ.id).executeTakeFirstOrThrow();
    assert.equal(after.status, 'revoked');
    const crl = await issuerCrl();
    assert.ok(crl && crl.number > (before?.number ?? 0));
    const noCsrf = await c.request('POST', `/admin/certificates/${serial}/revoke`, { form: { reason: 'unspecified' } });
    assert.equal(noCsrf.status, 403);
  });
});

describe('operator console: tenants, institutions and users', async () => {
  const w = await makePortalWorld('sqlite');
  const db = w.runtime.database.db;
  const ops = await operatorClient(w);

  test('create a tenant, an institution and a user whose one-time password works', async () => {
    const list = await ops.get('/admin/tenants');
    const dup = await ops.submit(list, '/admin/tenants', { code: 'T0001', name: 'x' });
    assert.equal(dup.status, 400);
    assert.match(dup.text, /already exists/);
    const created = await ops.follow(await ops.submit(list, '/admin/tenants', { code: 'T0100', name: '新規クリニック', email: 'new@clinic.example.jp' }));
    assert.match(created.text, /新規クリニック \(T0100\)/);
    const badInst = await ops.submit(created, '/admin/tenants/T0100/institutions', { number: '123', name: 'x' });
    assert.equal(badInst.status, 400);
    assert.match(badInst.text, /10-digit/);
    const withInst = await ops.follow(await ops.submit(created, '/admin/tenants/T0100/institutions', { number: '1399999999', name: '新規クリニック本院' }));
    assert.match(withInst.text, /1399999999/);
    const added = await ops.submit(withInst, '/admin/tenants/T0100/users', { login: 'nurse', role: 'user', institutions: '1399999999' });
    const password = /nurse の新しいパスワード: (\S+) /.exec(added.text)?.[1];
    assert.ok(password, 'the password is shown once');
    const edited = await ops.follow(await ops.submit(added, '/admin/tenants/T0100', { name: '新規クリニック', email: 'office@clinic.example.jp' }));
    assert.match(edited.text, /office@clinic\.example\.jp/);

    const nurse = w.client(await w.cert(300, { tenant: 'T0100' }));
    const home = await loginAs(nurse, 'nurse', password);
    assert.match(home.text, /新規クリニック本院/);

    // Lock: the session ends and the next login is refused; reset gives a new password.
    const page = await ops.get('/admin/tenants/T0100');
    await ops.submit(page, '/admin/tenants/T0100/users/nurse/lock');
    assert.equal((await nurse.get('/home')).status, 303);
    const refused = await nurse.submit(await nurse.get('/'), '/login', { loginId: 'nurse', password: password! });
    assert.match(refused.text, /ロックされています/);
    await ops.submit(await ops.get('/admin/tenants/T0100'), '/admin/tenants/T0100/users/nurse/unlock');
    const reset = await ops.submit(await ops.get('/admin/tenants/T0100'), '/admin/tenants/T0100/users/nurse/reset-password');
    const fresh = /nurse の新しいパスワード: (\S+) /.exec(reset.text)?.[1];
    assert.ok(fresh && fresh !== password);
    const again = await loginAs(nurse, 'nurse', fresh);
    assert.match(again.text, /<h1>ホーム<\/h1>/);
    const actions = (await db.selectFrom('audit_events').select('action').where('actor', '=', 'operator:ops').execute()).map((a) => a.action);
    for (const a of ['tenant.created', 'institution.created', 'user.created', 'tenant.updated', 'user.locked', 'user.unlocked', 'user.password_reset']) assert.ok(actions.includes(a), a);
  });
});

describe('tenant administration inside the portal (role 管理者)', async () => {
  const w = await makePortalWorld('sqlite');
  const db = w.runtime.database.db;

  test('a 管理者 manages its own users and sees its certificates; others are refused', async () => {
    const c = w.client(await w.cert(300));
    const home = await c.follow(await c.submit(await loginAs(c, 'yamada'), '/institutions', { institutionId: String((await db.selectFrom('institutions').select('id').where('number', '=', '1312345678').executeTakeFirstOrThrow()).id) }));
    assert.match(home.text, /id="menu-tenant">契約先の管理</);
    const page = await c.get('/tenant');
    assert.equal(page.status, 200);
    assert.match(page.text, /山田クリニック \(T0001\)/);
    assert.match(page.text, /id="tenant-certificates"/);
    assert.doesNotMatch(page.text, /別の医院|other/, 'nothing of another tenant');
    assert.doesNotMatch(page.text, /id="tenant-edit"/, 'the tenant itself is the operator’s');
    const created = await c.submit(page, '/tenant/users', { login: 'clerk', role: 'user', institutions: '1312345678' });
    assert.match(created.text, /clerk: \S{12}/);
    const self = await c.submit(created, '/tenant/users/yamada/lock');
    assert.equal(self.status, 400);
    await c.submit(created, '/tenant/users/solo/lock');
    const solo = await db.selectFrom('users').select('locked_at').where('login_id', '=', 'solo').executeTakeFirstOrThrow();
    assert.ok(solo.locked_at);
    await c.submit(await c.get('/tenant'), '/tenant/users/solo/unlock');
    assert.equal((await db.selectFrom('users').select('locked_at').where('login_id', '=', 'solo').executeTakeFirstOrThrow()).locked_at, null);
    const bad = await c.submit(created, '/tenant/users/clerk/institutions', { institutions: '2712345678' });
    assert.equal(bad.status, 400, 'another tenant’s institution is refused');

    const plain = w.client(await w.cert(300));
    await loginAs(plain, 'solo');
    assert.equal((await plain.get('/tenant')).status, 403);
  });
});
