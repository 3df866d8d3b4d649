import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePortalWorld, loginAs, PASSWORD } from '../helpers/portal-world.js';
import { addTenant, addUser } from '../../src/tenancy/service.js';
import type { Response, TlsClient } from '../helpers/client.js';
import type { Db } from '../../src/db/database.js';

/**
 * The shape of every request is checked at the edge (src/web/input.ts): repeated form fields,
 * JSON values that are not text, and oversized values are a 400 naming the field — a page in the
 * user's language for forms, {error: invalid_input} for the API — and change nothing.
 */
const csrfOf = (page: Response) => /name="_csrf" value="([^"]*)"/.exec(page.text)?.[1] ?? '';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** What the database holds that a refused request must not have changed. */
async function state(db: Db) {
  return {
    audit: await db.selectFrom('audit_head').selectAll().execute(),
    tenants: await db.selectFrom('tenants').selectAll().orderBy('id').execute(),
    users: await db.selectFrom('users').select(['id', 'login_id', 'locked_at', 'password_hash']).orderBy('id').execute(),
    links: await db.selectFrom('user_institutions').selectAll().orderBy(['user_id', 'institution_id']).execute(),
    throttle: await db.selectFrom('login_throttle').selectAll().execute(),
  };
}

function assertInvalidPage(r: Response, field: RegExp, what: string) {
  assert.equal(r.status, 400, `${what}: status ${r.status}\n${r.text.slice(0, 400)}`);
  assert.match(r.headers['content-type'] as string, /text\/html/, what);
  assert.match(r.text, /<p id="error">/, what);
  assert.match(r.text, field, what);
  assert.doesNotMatch(r.text, /at .*\.ts:\d+|TypeError|stack/i, what);
}

describe('request shapes are checked at the edge', async () => {
  const w = await makePortalWorld('sqlite');
  const db = w.runtime.database.db;
  await addTenant({ db, clock: w.clock }, { code: 'OPERATORS', name: '運用者' }, 'test');
  await addUser({ db, clock: w.clock }, { tenantCode: 'OPERATORS', loginId: 'ops', password: PASSWORD, role: 'operator' }, 'test');
  const ops = w.client(await w.cert(700, { tenant: 'OPERATORS' }));
  await loginAs(ops, 'ops');
  const opsCsrf = csrfOf(await ops.get('/admin/tenants'));
  const admin = w.client(await w.cert(700));
  await ops.get('/'); // the operator's session is unaffected by other clients
  await loginAs(admin, 'yamada');
  await admin.follow(await admin.submit(await admin.get('/institutions'), '/institutions', { institutionId: '1' }));
  const adminCsrf = csrfOf(await admin.get('/tenant'));
  assert.ok(opsCsrf && adminCsrf);

  const repeated: [TlsClient, string, string, string, RegExp][] = [
    [ops, '/admin/tenants', `_csrf=${opsCsrf}&code=T0009&code=T0010&name=a`, 'code', /「コード」/],
    [ops, '/admin/tenants/T0001', `_csrf=${opsCsrf}&name=a&name=b`, 'name', /「名称」/],
    [ops, '/admin/tenants/T0001/institutions', `_csrf=${opsCsrf}&number=1312345670&number=1312345671&name=x`, 'number', /「機関番号」/],
    [ops, '/admin/tenants/T0001/users', `_csrf=${opsCsrf}&login=a&login=b`, 'login', /「ログインID」/],
    [ops, '/admin/tenants/T0001/users/solo/institutions', `_csrf=${opsCsrf}&institutions=1312345678&institutions=1312345679`, 'institutions', /「健診機関」/],
    [ops, '/admin/certificates', `_csrf=${opsCsrf}&tenant=T0001&tenant=T0002`, 'tenant', /「tenant」/],
    [ops, '/admin/certificates/00/revoke', `_csrf=${opsCsrf}&reason=a&reason=b`, 'reason', /「reason」/],
    [admin, '/tenant/users', `_csrf=${adminCsrf}&login=a&login=b`, 'login', /「ログインID」/],
    [admin, '/tenant/users/solo/institutions', `_csrf=${adminCsrf}&institutions=1312345678&institutions=1312345679`, 'institutions', /「健診機関」/],
    [admin, '/institutions', `_csrf=${adminCsrf}&institutionId=1&institutionId=2`, 'institutionId', /「健診機関」/],
    [admin, '/renewal/later', `_csrf=${adminCsrf}&_csrf=${adminCsrf}`, '_csrf', /「_csrf」/],
    [admin, '/logout', `_csrf=a&_csrf=b`, '_csrf', /「_csrf」/],
  ];

  test('a repeated form field is a 400 page naming the field, never a 500, and changes nothing', async () => {
    const before = await state(db);
    for (const [c, path, raw, , label] of repeated) assertInvalidPage(await c.request('POST', path, { raw, headers: FORM }), label, path);
    assert.deepEqual(await state(db), before);
    assert.equal((await admin.get('/home')).status, 200, 'the session survived the refused logout');
  });

  test('JSON numbers, arrays, objects and null where text belongs are a 400 naming the field', async () => {
    const before = await state(db);
    const cases: [TlsClient, string, Record<string, unknown>, RegExp][] = [
      [ops, '/admin/tenants', { _csrf: opsCsrf, code: 12345, name: 'x' }, /「コード」/],
      [ops, '/admin/tenants', { _csrf: opsCsrf, code: 'T0011', name: ['a', 'b'] }, /「名称」/],
      [ops, '/admin/tenants/T0001/users', { _csrf: opsCsrf, login: { $ne: '' } }, /「ログインID」/],
      [ops, '/admin/tenants/T0001', { _csrf: opsCsrf, email: null }, /「連絡先メール/],
      [ops, '/admin/tenants/T0001', { _csrf: 42 }, /「_csrf」/],
      [admin, '/tenant/users', { _csrf: adminCsrf, login: 'x', institutions: ['1312345678'] }, /「健診機関」/],
    ];
    for (const [c, path, json, label] of cases) assertInvalidPage(await c.request('POST', path, { json }), label, `${path} ${JSON.stringify(json)}`);
    assertInvalidPage(await ops.request('POST', '/admin/tenants', { json: [opsCsrf] }), /「body」/, 'an array body');
    assert.deepEqual(await state(db), before);
  });

  test('a 15 KB login ID is refused at the edge: no throttle row, no audit row', async () => {
    const c = w.client(await w.cert(700));
    const page = await c.get('/');
    const before = await state(db);
    const r = await c.request('POST', '/login', { raw: `_csrf=${csrfOf(page)}&loginId=${'y'.repeat(15_000)}&password=x`, headers: FORM });
    assertInvalidPage(r, /「ログインID」が長すぎます \(64 文字まで\)/, 'long login ID');
    const pw = await c.request('POST', '/login', { raw: `_csrf=${csrfOf(page)}&loginId=yamada&password=${'p'.repeat(300)}`, headers: FORM });
    assertInvalidPage(pw, /「パスワード」が長すぎます \(256 文字まで\)/, 'long password');
    assert.deepEqual(await state(db), before);
    // The same refusal in English when the user chose English.
    const en = await c.request('POST', '/login?lang=en', { raw: `loginId=a&loginId=b`, headers: FORM });
    assert.equal(en.status, 400);
    assert.match(en.text, /“Login ID” was not sent as one text value/);
    // A normal login still works, CSRF token and all.
    assert.equal((await c.follow(await c.submit(await c.get('/'), '/login', { loginId: 'solo', password: PASSWORD }))).status, 200);
  });

  test('oversized names, e-mail addresses, 機関番号 and institution lists are refused with the limit', async () => {
    const before = await state(db);
    const long: [string, string, RegExp][] = [
      ['/admin/tenants', `code=${'T'.repeat(33)}&name=x`, /「コード」が長すぎます \(32 文字まで\)/],
      ['/admin/tenants', `code=T0012&name=${'名'.repeat(129)}`, /「名称」が長すぎます \(128 文字まで\)/],
      ['/admin/tenants/T0001', `email=${'a'.repeat(250)}%40example.jp`, /254 文字まで/],
      ['/admin/tenants/T0001/institutions', `number=13123456789&name=x`, /「機関番号」が長すぎます \(10 文字まで\)/],
      ['/admin/tenants/T0001/users', `login=z&institutions=${'1312345678,'.repeat(101)}`, /「健診機関」が長すぎます/],
      ['/admin/certificates', `tenant=T0001&label=${'l'.repeat(129)}`, /128 文字まで/],
      ['/admin/certificates/00/revoke', `reason=${'r'.repeat(33)}`, /32 文字まで/],
    ];
    for (const [path, raw, msg] of long) assertInvalidPage(await ops.request('POST', path, { raw: `_csrf=${opsCsrf}&${raw}`, headers: FORM }), msg, path);
    // Longer than any path parameter may be (Fastify's maxParamLength, 100): 414 before routing.
    assert.equal((await ops.get(`/admin/certificates/${'a'.repeat(129)}`)).status, 414);
    for (const path of [`/admin/tenants/${'T'.repeat(33)}`, `/admin/audit?actor=${'a'.repeat(129)}`]) {
      assertInvalidPage(await ops.get(path), /長すぎます/, path);
    }
    assertInvalidPage(await ops.get('/admin/certificates?tenant=a&tenant=b'), /「tenant」/, 'a repeated query parameter');
    assert.deepEqual(await state(db), before);
  });

  test('a name with a bidi override or zero-width space is refused by name from the console form', async () => {
    const before = await state(db);
    for (const name of ['山田\u202Eクリニック', 'ゼロ\u200B幅', '改\u2028行']) {
      const r = await ops.request('POST', '/admin/tenants', { form: { _csrf: opsCsrf, code: 'T0013', name } });
      assert.equal(r.status, 400, name);
      assert.match(r.text, /name: must not contain control, format or separator characters \(found U\+(202E|200B|2028)\)/);
    }
    assert.deepEqual(await state(db), before);
  });

  test('the JSON API answers a wrong body shape with invalid_input JSON', async () => {
    const c = w.client(await w.cert(50));
    for (const raw of ['[1,2]', '"text"', '42']) {
      const r = await c.request('POST', '/api/v1/certificate/renewal', { raw, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, raw);
      assert.equal(r.json().error, 'invalid_input', raw);
      assert.equal(r.json().field, 'body');
    }
    const id = await c.request('GET', `/api/v1/renewals/${'x'.repeat(65)}/pkcs12`);
    assert.equal(id.status, 400);
    assert.deepEqual({ error: id.json().error, field: id.json().field }, { error: 'invalid_input', field: 'id' });
    const fmt = await c.request('GET', '/api/v1/certificate?lang=en&lang=ja');
    assert.equal(fmt.json().error, 'invalid_input');
    assert.match(String(fmt.json().message), /^lang: /);
    // Still a normal API: {} and no body are accepted.
    assert.equal((await c.request('POST', '/api/cert', { json: {} })).status, 200);
  });

  test('a path parameter the domain normalises is not echoed into the Location header', async () => {
    const c = await w.cert(300);
    // Upper case, colons and a line break: still this serial to normaliseSerial, but no header value.
    const typed = c.row.serial.toUpperCase().replace(/(..)(?!$)/g, '$1:').replace(':', '\n');
    const r = await ops.request('POST', `/admin/certificates/${encodeURIComponent(typed)}/revoke`, { form: { _csrf: opsCsrf, reason: 'superseded' } });
    assert.equal(r.status, 303, r.text.slice(0, 300));
    assert.equal(r.headers.location, `/admin/certificates/${c.row.serial}`);
    const renamed = await ops.request('POST', '/admin/tenants/t0002', { form: { _csrf: opsCsrf, name: '別の医院' } });
    assert.equal(renamed.status, 303);
    assert.equal(renamed.headers.location, '/admin/tenants/t0002');
    // The Kelvin sign lower-cases to "k" in JavaScript, not in SQL: it finds no tenant K0001.
    await addTenant({ db, clock: w.clock }, { code: 'K0001', name: 'ケー医院' }, 'test');
    const kelvin = await ops.request('POST', `/admin/tenants/${encodeURIComponent('\u212A0001')}`, { form: { _csrf: opsCsrf, name: 'x' } });
    assert.equal(kelvin.status, 400);
    assert.equal((await db.selectFrom('tenants').select('name').where('code', '=', 'K0001').executeTakeFirstOrThrow()).name, 'ケー医院');
  });

  test('a JSON body larger than a form is a 413, not parsed', async () => {
    const r = await ops.request('POST', '/admin/tenants', { json: { _csrf: opsCsrf, name: 'x'.repeat(20_000) } });
    assert.equal(r.status, 413);
  });
});
